//! A whole round on the tiny skill through the operator's commands: make-work, the app,
//! validate, assimilate, aggregate; then the next round's work starts from the new version.

use aginet::format::delta::Delta;
use aginet::format::report::Report;

use crate::common::{models, server, train};
use std::path::{Path, PathBuf};
use std::process::Output;

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A project whose queue holds `n` accepted deltas of 20-step work units.
fn project_with_queue(dir: &Path, n: usize) -> (PathBuf, Vec<PathBuf>) {
    let project = dir.join("project");
    let models = models();
    let p = project.to_str().unwrap();
    ok(server(&[
        "init",
        "--project",
        p,
        "--models",
        models.to_str().unwrap(),
        "--skill",
        "tiny",
    ]));
    let out = dir.join("wu");
    let made = ok(server(&[
        "make-work",
        "--project",
        p,
        "--count",
        &n.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let wus: Vec<PathBuf> = made.lines().map(PathBuf::from).collect();
    for wu in &wus {
        train(wu, 20);
        let files = [wu.join("delta"), wu.join("report")];
        let name = wu.file_name().unwrap().to_str().unwrap();
        ok(server(&[
            "validate",
            "--project",
            p,
            files[0].to_str().unwrap(),
            files[1].to_str().unwrap(),
        ]));
        ok(server(&[
            "assimilate",
            "--project",
            p,
            files[0].to_str().unwrap(),
            files[1].to_str().unwrap(),
            name,
            "1",
        ]));
    }
    (project, wus)
}

#[test]
fn a_round_aggregates_exactly_signs_and_feeds_the_next_round() {
    let dir = tempfile::tempdir().unwrap();
    let (project, wus) = project_with_queue(dir.path(), 3);
    let p = project.to_str().unwrap();
    let out = ok(server(&[
        "aggregate",
        "--project",
        p,
        "--strategy",
        "fedavg",
    ]));
    assert!(
        out.contains("tiny: version 1 from 3 deltas (0 dropped as stale)"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_dir(project.join("skills/tiny/queue"))
            .unwrap()
            .count(),
        0,
        "the queue is consumed"
    );

    // The new version is sealed in the archive, and signed with the project's key.
    let sealed = std::fs::read(project.join("skills/tiny/adapters/v000001.sealed")).unwrap();
    assert!(sealed.starts_with(b"AGSEAL01"));
    let signed = published_adapter(&project, dir.path());
    assert!(!sealed
        .windows(64)
        .any(|w| signed.windows(64).next() == Some(w)));
    let key = aginet::format::signed::read_public_key(&project.join("keys/signing.pub")).unwrap();
    let bytes = aginet::format::signed::open(&signed, &key)
        .expect("the new adapter is signed by the project key")
        .to_vec();

    // Exact for LoRA: with A frozen, FedAvg's new B·A − B₀·A is the weighted mean of the
    // clients' ΔB·A (weights: trained tokens).
    let (meta, new) = aginet::format::tensors::decode(&bytes).unwrap();
    assert!(meta.contains("\"adapter_version\":1"), "{meta}");
    let mut weighted = None::<candle_core::Tensor>;
    let mut total = 0f64;
    let site = "blk.1.ffn_up";
    let a = new[&format!("{site}.lora_a")].clone();
    for wu in &wus {
        let w = Report::read(&wu.join("report")).unwrap().tokens as f64;
        let db = Delta::read(&wu.join("delta")).unwrap().tensors[&format!("{site}.lora_b")].clone();
        let update = (db.matmul(&a).unwrap() * w).unwrap();
        weighted = Some(match weighted {
            None => update,
            Some(s) => (s + update).unwrap(),
        });
        total += w;
    }
    let want = (weighted.unwrap() / total).unwrap();
    let got = new[&format!("{site}.lora_b")].matmul(&a).unwrap(); // B₀ = 0 at version 0.
    let err: f32 = (got - &want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    let scale: f32 = want.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(
        err <= 1e-5 * scale.max(1e-12),
        "max |ΔW − mean ΔW_i| = {err} (scale {scale})"
    );

    // The next round's work units carry version 1 and its adapter, and the app accepts it.
    let next = dir.path().join("wu2");
    let made = ok(server(&[
        "make-work",
        "--project",
        p,
        "--out",
        next.to_str().unwrap(),
    ]));
    let wu = PathBuf::from(made.trim());
    assert!(
        wu.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("tiny_v1_"),
        "{made}"
    );
    assert_eq!(std::fs::read(wu.join("adapter")).unwrap(), signed);
    assert_eq!(
        std::fs::read(wu.join("project_key")).unwrap(),
        std::fs::read(project.join("keys/signing.pub")).unwrap()
    );
    let config = aginet::format::config::WorkConfig::read(&wu.join("config")).unwrap();
    assert_eq!(config.adapter_version, 1);
    train(&wu, 2);

    let again = ok(server(&["aggregate", "--project", p]));
    assert!(again.contains("tiny: no queued deltas"), "{again}");
}

/// The signed adapter the project's newest version gives work units (through `make-work`).
fn published_adapter(project: &Path, scratch: &Path) -> Vec<u8> {
    let out = scratch.join(format!("published-{}", std::process::id()));
    let made = ok(server(&[
        "make-work",
        "--project",
        project.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let bytes = std::fs::read(PathBuf::from(made.trim()).join("adapter")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    bytes
}

/// What a finished aggregation left: the round record, the sha256 of the new version's signed
/// adapter, and whether anything is left in the queue or beyond version 1.
fn aggregation_state(project: &Path, scratch: &Path) -> (String, String, usize, bool) {
    let skill = project.join("skills/tiny");
    (
        std::fs::read_to_string(skill.join("rounds/v000001.json")).unwrap(),
        aginet::format::files::sha256_hex(&published_adapter(project, scratch)),
        std::fs::read_dir(skill.join("queue")).unwrap().count(),
        skill.join("adapters/v000002.sealed").exists(),
    )
}

#[test]
fn aggregate_killed_anywhere_then_rerun_counts_every_delta_once() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let (project, _) = project_with_queue(dir.path(), 2);
    let aggregate = |p: &Path| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_aginet-server"));
        c.args(["aggregate", "--project", p.to_str().unwrap()])
            .args(["--strategy", "fedadam"])
            .env_remove("AGINET_KILL_AT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };

    let reference = dir.path().join("reference");
    copy_tree(&project, &reference);
    assert!(aggregate(&reference).status().unwrap().success());
    let want = aggregation_state(&reference, dir.path());
    assert_eq!(want.2, 0, "the queue is consumed");
    assert!(!want.3);

    let points = [
        "aggregate:optimizer-written",
        "aggregate:adapter-pending",
        "aggregate:round-recorded",
        "aggregate:committed",
        "aggregate:cleanup-started",
    ];
    for (trial, point) in points.iter().map(Some).chain([None; 5]).enumerate() {
        let copy = dir.path().join(format!("trial{trial}"));
        copy_tree(&project, &copy);
        let status = match point {
            Some(point) => aggregate(&copy)
                .env("AGINET_KILL_AT", point)
                .status()
                .unwrap(),
            None => {
                // A kill at an arbitrary moment: after 0, 20, 40, 60 and 80 ms.
                let mut child = aggregate(&copy).spawn().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(20 * (trial as u64 - 5)));
                let _ = child.kill();
                child.wait().unwrap()
            }
        };
        if point.is_some() {
            assert_eq!(status.signal(), Some(9), "{point:?} was reached and killed");
        }
        assert!(
            aggregate(&copy).status().unwrap().success(),
            "rerun after a kill at {point:?}"
        );
        assert_eq!(
            aggregation_state(&copy, dir.path()),
            want,
            "after a kill at {point:?} (trial {trial}): one new version, every delta once"
        );
    }
}

/// Copies the folder `from` to `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn aggregate_waits_for_its_buffer_of_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let (project, _) = project_with_queue(dir.path(), 2);
    let skill = project.join("skills/tiny");
    let queued = std::fs::read_dir(skill.join("queue")).unwrap().count();
    let aggregate = |min: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_aginet-server"))
            .args(["aggregate", "--project", project.to_str().unwrap()])
            .args(["--min-deltas", min])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let waiting = aggregate("3");
    assert!(
        waiting.contains("tiny: 2 fresh deltas queued, waiting for 3"),
        "{waiting}"
    );
    assert_eq!(
        std::fs::read_dir(skill.join("queue")).unwrap().count(),
        queued
    );
    assert!(
        !skill.join("rounds/v000001.json").exists(),
        "no version made"
    );
    let made = aggregate("2");
    assert!(made.contains("tiny: version 1 from 2 deltas"), "{made}");
    assert!(skill.join("rounds/v000001.json").exists());
}

#[test]
fn aggregate_uses_the_skills_server_table_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let (project, _) = project_with_queue(dir.path(), 2);
    let skill = project.join("skills/tiny");
    let manifest = skill.join("manifest.toml");
    let shipped = std::fs::read_to_string(&manifest).unwrap();
    let aggregate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_aginet-server"))
            .args(["aggregate", "--project", project.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let with_server_table =
        |table: &str| std::fs::write(&manifest, format!("{shipped}\n[server]\n{table}")).unwrap();
    with_server_table("strategy = \"dilocco\"\n");
    let refused = aggregate();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        stderr.contains("manifest.toml: [server] strategy \"dilocco\" is not one of"),
        "{stderr}"
    );
    assert!(!skill.join("rounds/v000001.json").exists(), "nothing made");
    with_server_table("strategy = \"diloco\"\nserver_lr = 1.5\n");
    let made = aggregate();
    let stdout = String::from_utf8_lossy(&made.stdout);
    assert!(made.status.success(), "{made:?}");
    assert!(
        stdout.contains("tiny: version 1 from 2 deltas (0 dropped as stale), diloco at η 1.5"),
        "{stdout}"
    );
    let round = std::fs::read_to_string(skill.join("rounds/v000001.json")).unwrap();
    assert!(round.contains("\"strategy\": \"diloco\""), "{round}");
}
