//! `validate` and `assimilate` on real results of the tiny skill: honest work passes and is queued
//! and credited once; every kind of bad result is rejected with its reason; replicas compare by
//! their delta bytes.

use aginet::format::delta::Delta;
use aginet::format::report::Report;

use crate::common::{models, server, train};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A project with one finished work unit.
struct Fixture {
    _dir: tempfile::TempDir,
    project: PathBuf,
    wu: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let models = models();
    let out = server(&[
        "init",
        "--project",
        project.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
        "--skill",
        "tiny",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wus = dir.path().join("wu");
    let out = server(&[
        "make-work",
        "--project",
        project.to_str().unwrap(),
        "--out",
        wus.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wu = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    train(&wu, 20);
    Fixture {
        _dir: dir,
        project,
        wu,
    }
}

impl Fixture {
    fn validate(&self) -> (Option<i32>, String) {
        let out = server(&[
            "validate",
            "--project",
            self.project.to_str().unwrap(),
            self.wu.join("delta").to_str().unwrap(),
            self.wu.join("report").to_str().unwrap(),
        ]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    fn expect_invalid(&self, reason: &str) {
        let (code, text) = self.validate();
        assert_eq!(code, Some(1), "{text}");
        assert!(
            text.starts_with("invalid: ") && text.contains(reason),
            "expected {reason:?}: {text}"
        );
    }

    /// Rewrites the delta through `edit` and points the report at the new bytes, as a
    /// modified app would.
    fn forge(&self, edit: impl FnOnce(&mut Delta)) {
        let mut delta = Delta::read(&self.wu.join("delta")).unwrap();
        edit(&mut delta);
        let bytes = delta.to_bytes().unwrap();
        std::fs::write(self.wu.join("delta"), &bytes).unwrap();
        let mut report = Report::read(&self.wu.join("report")).unwrap();
        report.delta_sha256 = aginet::format::files::sha256_hex(&bytes);
        report.adapter_version = delta.header.adapter_version;
        report.write(&self.wu.join("report")).unwrap();
    }
}

#[test]
fn honest_work_is_valid() {
    let f = fixture();
    let (code, text) = f.validate();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("valid: held-out reward"), "{text}");
}

#[test]
fn a_forged_hash_is_rejected() {
    let f = fixture();
    let mut report = Report::read(&f.wu.join("report")).unwrap();
    report.delta_sha256 = "00".repeat(32);
    report.write(&f.wu.join("report")).unwrap();
    f.expect_invalid("sha256 differs from the report's");
}

#[test]
fn a_forged_claimed_reward_or_unknown_work_unit_is_rejected() {
    let f = fixture();
    let honest = Report::read(&f.wu.join("report")).unwrap();
    let mut report = honest.clone();
    report.reward_after = (honest.reward_after * 1.5).min(1.0);
    report.write(&f.wu.join("report")).unwrap();
    f.expect_invalid("disagrees with the");
    report = honest.clone();
    report.seed = 999_999;
    report.write(&f.wu.join("report")).unwrap();
    f.expect_invalid("work unit 999999 is unknown");
    honest.write(&f.wu.join("report")).unwrap();
    assert_eq!(
        f.validate().0,
        Some(0),
        "the honest claim is within tolerance"
    );
}

#[test]
fn a_truncated_delta_is_rejected() {
    let f = fixture();
    let bytes = std::fs::read(f.wu.join("delta")).unwrap();
    std::fs::write(f.wu.join("delta"), &bytes[..bytes.len() / 2]).unwrap();
    f.expect_invalid("sha256 differs from the report's");
}

#[test]
fn a_truncated_report_is_rejected() {
    let f = fixture();
    let bytes = std::fs::read(f.wu.join("report")).unwrap();
    std::fs::write(f.wu.join("report"), &bytes[..bytes.len() / 2]).unwrap();
    f.expect_invalid("not JSON");
}

#[test]
fn a_nan_delta_is_rejected() {
    let f = fixture();
    f.forge(|d| {
        let t = d.tensors.get_mut("blk.0.attn_q.lora_b").unwrap();
        *t = (t.clone() * f64::NAN).unwrap();
    });
    f.expect_invalid("non-finite value");
}

#[test]
fn a_huge_delta_is_rejected() {
    let f = fixture();
    f.forge(|d| {
        for t in d.tensors.values_mut() {
            *t = (t.clone() * 1e4).unwrap();
        }
    });
    f.expect_invalid("exceeds max_delta_norm");
}

/// A finished work unit that starts from global version 1 (aggregated from two honest results).
fn fixture_at_version_1() -> Fixture {
    let first = fixture();
    let p = first.project.to_str().unwrap();
    let out = first.wu.parent().unwrap().join("round1");
    let made = server(&["make-work", "--project", p, "--out", out.to_str().unwrap()]);
    let second = PathBuf::from(String::from_utf8_lossy(&made.stdout).trim());
    for wu in [&first.wu, &second] {
        if !wu.join("delta").exists() {
            train(wu, 20);
        }
        let (d, r) = (wu.join("delta"), wu.join("report"));
        let name = wu.file_name().unwrap().to_str().unwrap();
        let out = server(&[
            "assimilate",
            "--project",
            p,
            d.to_str().unwrap(),
            r.to_str().unwrap(),
            name,
            "1",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = server(&["aggregate", "--project", p, "--strategy", "fedavg"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("version 1"),
        "{out:?}"
    );
    let made = server(&[
        "make-work",
        "--project",
        p,
        "--out",
        out_dir(&first).to_str().unwrap(),
    ]);
    let wu = PathBuf::from(String::from_utf8_lossy(&made.stdout).trim());
    let config = aginet::format::config::WorkConfig::read(&wu.join("config")).unwrap();
    assert_eq!(config.adapter_version, 1);
    train(&wu, 20);
    Fixture { wu, ..first }
}

fn out_dir(f: &Fixture) -> PathBuf {
    f.wu.parent().unwrap().join("round2")
}

#[test]
fn a_sign_flipped_delta_from_a_trained_adapter_is_rejected_by_the_held_out_reward() {
    // At version 0 the model is near uniform and almost any change helps; from a trained
    // version, undoing what was learned shows on held-out data.
    let f = fixture_at_version_1();
    assert_eq!(
        f.validate().0,
        Some(0),
        "honest work from version 1 is valid"
    );
    f.forge(|d| {
        for t in d.tensors.values_mut() {
            *t = (t.clone() * -3.0).unwrap();
        }
    });
    f.expect_invalid("held-out reward falls");
}

#[test]
fn a_sign_flipped_delta_of_honest_size_is_rejected_by_a_step_along_it() {
    // Its norm is an honest one's, and applied whole it may look no worse than honest work
    // late in training; a short step along it lowers the held-out reward.
    let f = fixture_at_version_1();
    f.forge(|d| {
        for t in d.tensors.values_mut() {
            *t = t.neg().unwrap();
        }
    });
    f.expect_invalid("a step of 0.2 along the delta");
}

/// Sets `[validate] key = value` in the project's settings.
fn set_validate(f: &Fixture, key: &str, value: f64) {
    let path = f.project.join("project.toml");
    let mut settings: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let validate = settings["validate"].as_table_mut().unwrap();
    validate.insert(key.to_string(), toml::Value::Float(value));
    std::fs::write(&path, settings.to_string()).unwrap();
}

#[test]
fn an_older_projects_whole_delta_bound_is_ignored_with_a_warning() {
    let f = fixture();
    set_validate(&f, "max_reward_drop", 0.0);
    let (code, text) = f.validate();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("max_reward_drop is no longer used"), "{text}");
}

#[test]
fn probe_settings_out_of_range_are_refused_naming_the_file() {
    let f = fixture();
    // (key, bad value, its default restored afterwards, the message naming the file)
    let cases = [
        ("probe_scale", 0.0, 0.2, "probe_scale 0 is not in (0, 1]"),
        (
            "max_probe_drop",
            1.5,
            0.05,
            "max_probe_drop 1.5 is not in [0, 1]",
        ),
    ];
    for (key, bad, default, message) in cases {
        set_validate(&f, key, bad);
        // The project's own file is wrong: BOINC retries later (exit 3), the result is not lost.
        let (code, text) = f.validate();
        assert_eq!(code, Some(3), "{text}");
        assert!(
            text.contains(&format!("project.toml: [validate] {message}")),
            "{text}"
        );
        set_validate(&f, key, default);
    }
}

#[test]
fn wrong_shapes_are_rejected() {
    let f = fixture();
    f.forge(|d| {
        d.tensors.remove("blk.1.ffn_down.lora_b");
    });
    f.expect_invalid("tensor blk.1.ffn_down.lora_b is missing");
}

#[test]
fn an_unknown_or_stale_version_is_rejected() {
    let f = fixture();
    f.forge(|d| d.header.adapter_version = 9);
    f.expect_invalid("adapter version 9 is unknown (current 0)");
}

#[test]
fn a_replayed_delta_is_rejected() {
    let f = fixture();
    let sha = Report::read(&f.wu.join("report")).unwrap().delta_sha256;
    std::fs::write(f.project.join("state/seen_deltas"), format!("{sha}\n")).unwrap();
    f.expect_invalid("replay");
}

#[test]
fn replicas_compare_by_delta_bytes() {
    let f = fixture();
    let copy = f.wu.with_extension("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for name in ["delta", "report"] {
        std::fs::copy(f.wu.join(name), copy.join(name)).unwrap();
    }
    let args = |a: &Path, b: &Path| {
        server(&[
            "validate",
            "--project",
            f.project.to_str().unwrap(),
            "--compare",
            a.join("delta").to_str().unwrap(),
            a.join("report").to_str().unwrap(),
            b.join("delta").to_str().unwrap(),
            b.join("report").to_str().unwrap(),
        ])
    };
    assert_eq!(args(&f.wu, &copy).status.code(), Some(0));
    let mut delta = Delta::read(&copy.join("delta")).unwrap();
    let t = delta.tensors.get_mut("blk.0.attn_q.lora_b").unwrap();
    *t = (t.clone() * 1.0001).unwrap();
    std::fs::write(copy.join("delta"), delta.to_bytes().unwrap()).unwrap();
    assert_eq!(args(&f.wu, &copy).status.code(), Some(1));
}

#[test]
fn an_unreadable_project_is_a_transient_error() {
    let out = server(&["validate", "--project", "/nonexistent/project", "a", "b"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Fixture {
    fn assimilate(&self, extra: &[&str]) -> Output {
        let mut args = vec!["assimilate", "--project", self.project.to_str().unwrap()];
        args.extend_from_slice(extra);
        server(&args)
    }

    fn assimilate_result(&self) -> String {
        let delta = self.wu.join("delta");
        let report = self.wu.join("report");
        let out = self.assimilate(&[
            delta.to_str().unwrap(),
            report.to_str().unwrap(),
            "tiny_v0_000000",
            "12.5",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn scoreboard_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.project.join("scoreboard.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(String::from)
            .collect()
    }
}

#[test]
fn assimilate_queues_logs_and_credits_once() {
    let f = fixture();
    assert_eq!(f.validate().0, Some(0));
    let first = f.assimilate_result();
    assert!(
        first.starts_with("accepted tiny_v0_000000: credit "),
        "{first}"
    );
    let sha = Report::read(&f.wu.join("report")).unwrap().delta_sha256;
    let queue = f.project.join("skills/tiny/queue");
    assert!(
        queue.join(format!("{sha}.delta")).exists() && queue.join(format!("{sha}.report")).exists()
    );
    let rows = f.scoreboard_lines();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].contains(",tiny,") && rows[0].contains(",valid,accepted,"),
        "{rows:?}"
    );
    let credit: f64 = rows[0].rsplit(',').next().unwrap().parse().unwrap();
    assert!(credit > 0.0, "valid work earns credit: {rows:?}");

    let again = f.assimilate_result();
    assert!(again.contains("already assimilated"), "{again}");
    assert_eq!(
        f.scoreboard_lines().len(),
        1,
        "a rerun counts the delta once"
    );
    f.expect_invalid("replay");
}

#[test]
fn assimilate_killed_midway_then_rerun_counts_the_delta_once() {
    use std::os::unix::process::ExitStatusExt;
    let f = fixture();
    let (delta, report) = (f.wu.join("delta"), f.wu.join("report"));
    // Killed after queueing, then (rerun) after marking the delta seen: both before the
    // scoreboard line.
    for point in ["assimilate:queued", "assimilate:seen"] {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_aginet-server"))
            .args(["assimilate", "--project", f.project.to_str().unwrap()])
            .args([delta.to_str().unwrap(), report.to_str().unwrap()])
            .args(["tiny_v0_000000", "12.5"])
            .env("AGINET_KILL_AT", point)
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(9), "killed at {point}");
        assert!(f.scoreboard_lines().is_empty());
    }
    let out = f.assimilate_result();
    assert!(out.starts_with("accepted"), "{out}");
    assert_eq!(f.scoreboard_lines().len(), 1);
    let seen = std::fs::read_to_string(f.project.join("state/seen_deltas")).unwrap();
    assert_eq!(seen.lines().count(), 1, "the delta is marked seen once");
    assert_eq!(
        std::fs::read_dir(f.project.join("skills/tiny/queue"))
            .unwrap()
            .count(),
        3,
        "delta, report and entry"
    );
}

#[test]
fn assimilate_logs_an_invalid_result_without_credit() {
    let f = fixture();
    f.forge(|d| {
        for t in d.tensors.values_mut() {
            *t = (t.clone() * 1e4).unwrap();
        }
    });
    let out = f.assimilate_result();
    assert!(
        out.starts_with("rejected") && out.contains("max_delta_norm"),
        "{out}"
    );
    let rows = f.scoreboard_lines();
    assert!(
        rows[0].contains(",invalid,") && rows[0].ends_with(",0.0"),
        "{rows:?}"
    );
    assert_eq!(
        std::fs::read_dir(f.project.join("skills/tiny/queue"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn assimilate_error_mode_logs_the_failed_work_unit_once() {
    let f = fixture();
    for _ in 0..2 {
        let out = f.assimilate(&["--error", "4", "tiny_v0_000007"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rows = f.scoreboard_lines();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].contains("tiny_v0_000007") && rows[0].contains(",error,BOINC error 4,0"),
        "{rows:?}"
    );
}
