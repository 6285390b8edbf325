//! The app versions for the other platforms volunteers have, run here: Windows x86_64 under
//! Wine, Linux aarch64 under qemu. Each trains a tiny work unit to the end, resumes to the same
//! bytes after being killed mid-run, fails with a clear message on a truncated model, and its
//! result validates with this x86_64 server; its delta is compared with the run of the same
//! work unit and thread count by the Linux x86_64 app version (the static FFI build), natively. The Windows build also runs in BOINC mode, in the
//! app API's standalone mode (no client), from a slot folder.

mod emulated;

use crate::common::{init_project, ok, one_work_unit, server, set_steps};
use crate::common::{valid_rewards, validate};
use aginet::format::config::WorkConfig;
use emulated::Platform;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Steps of the work unit: qemu runs a step of the tiny model in about 2 s.
const STEPS: u32 = 6;
/// How far a delta may be from the native x86_64 one (relative L2 over all factors): the last
/// bits of the C math library's `expf`, `sinf` and the like, or of other matrix kernels.
const DELTA_BOUND: f64 = 1e-5;
/// How far its held-out reward may be from the native one's.
const REWARD_BOUND: f64 = 1e-4;

#[test]
fn windows_app_trains_resumes_fails_clearly_and_validates() {
    platform_round(Platform::Windows);
}

#[test]
fn aarch64_app_trains_resumes_fails_clearly_and_validates() {
    platform_round(Platform::LinuxAarch64);
}

/// A project of the tiny skill with one work unit cut to `steps` steps.
struct Setup {
    dir: tempfile::TempDir,
    project: PathBuf,
    wu: PathBuf,
}

impl Setup {
    fn new(steps: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let project = init_project(dir.path(), &crate::common::models(), "tiny");
        let wu = one_work_unit(&project, dir.path());
        set_steps(&wu, steps);
        Self { dir, project, wu }
    }

    /// A fresh copy of the work unit's input files in `name`.
    fn copy(&self, name: &str) -> PathBuf {
        let to = self.dir.path().join(name);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&self.wu).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
        to
    }
}

fn platform_round(platform: Platform) {
    let setup = Setup::new(STEPS);
    let native = setup.copy("native");
    let started = Instant::now();
    ok_stderr(&run(Platform::LinuxX86_64, &native, &[]));
    let native_s = started.elapsed().as_secs_f64();

    // To the end, and validated by the x86_64 server.
    let there = setup.copy("there");
    let started = Instant::now();
    let out = run(platform, &there, &[]);
    let there_s = started.elapsed().as_secs_f64();
    ok(&out);
    let verdict = ok(&validate(&setup.project, &there, &there.join("report")));
    let (_, reward) = valid_rewards(&verdict);
    let (_, native_reward) = valid_rewards(&ok(&validate(
        &setup.project,
        &native,
        &native.join("report"),
    )));
    let distance = delta_distance(&native.join("delta"), &there.join("delta"));
    eprintln!(
        "{platform:?}: {there_s:.1} s against {native_s:.1} s natively; delta {}; held-out \
         reward {reward} against {native_reward}",
        distance.map_or("byte-identical to x86_64's".into(), |d| format!(
            "{d:.3e} relative L2 from x86_64's"
        ))
    );
    assert!(
        distance.unwrap_or(0.0) <= DELTA_BOUND,
        "{platform:?}: delta {distance:?} from x86_64's"
    );
    assert!(
        (reward - native_reward).abs() <= REWARD_BOUND,
        "{platform:?}: reward {reward} against {native_reward}"
    );

    // Killed mid-run (no chance to clean up), then resumed: the same bytes.
    let killed = setup.copy("killed");
    kill_after_step(platform, &killed, 3);
    let out = run(platform, &killed, &[]);
    let log = ok_stderr(&out);
    assert!(log.contains("resuming from checkpoint"), "{log}");
    assert_eq!(
        read(&killed.join("delta")),
        read(&there.join("delta")),
        "{platform:?}: resumed run's delta"
    );

    // A truncated model (its hash pinned, so that the GGUF reader meets it): a clear error.
    let bad = setup.copy("truncated");
    let model = read(&bad.join("model"));
    std::fs::write(bad.join("model"), &model[..model.len() - 1000]).unwrap();
    let mut config = WorkConfig::read(&bad.join("config")).unwrap();
    config.base_sha256 = aginet::format::files::sha256_file(&bad.join("model")).unwrap();
    std::fs::write(bad.join("config"), config.to_json()).unwrap();
    let out = run(platform, &bad, &[]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(i32::from(aginet::app::exit::MODEL)),
        "{log}"
    );
    assert!(
        log.contains("model") && log.contains("lies past the end of the file"),
        "{log}"
    );
    assert!(!bad.join("delta").exists());
}

/// `aginet run --threads 1 --dir WU EXTRA…` on `platform`.
fn run(platform: Platform, wu: &Path, extra: &[&str]) -> Output {
    platform
        .command(&run_args(platform, wu, extra))
        .output()
        .unwrap()
}

fn run_args(platform: Platform, wu: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["run", "--threads", "1", "--dir"]
        .iter()
        .map(OsString::from)
        .collect();
    args.push(platform.path(wu));
    args.extend(extra.iter().map(OsString::from));
    args
}

/// Starts the work unit with a checkpoint after every step and kills the process (SIGKILL)
/// once step `step` is logged.
fn kill_after_step(platform: Platform, wu: &Path, step: u32) {
    let mut child = platform
        .command(&run_args(platform, wu, &["--checkpoint-every", "1"]))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let marker = format!("step {step:>5}/");
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let found = line.starts_with(&marker);
        seen.push(line);
        if found {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        seen.last().is_some_and(|l| l.starts_with(&marker)),
        "{platform:?} ended before step {step}:\n{}",
        seen.join("\n")
    );
    assert!(!wu.join("delta").exists(), "killed before the end");
}

/// The relative L2 distance of delta `b` from delta `a` (`aginet-server delta-diff`), `None`
/// when their bytes are the same.
fn delta_distance(a: &Path, b: &Path) -> Option<f64> {
    if read(a) == read(b) {
        return None;
    }
    let out = ok(&server(&[
        "delta-diff",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]));
    let all = out
        .lines()
        .find(|l| l.starts_with("all factors"))
        .unwrap_or_else(|| panic!("no overall line in {out}"));
    let value = all
        .split_whitespace()
        .skip_while(|w| *w != "L2")
        .nth(1)
        .unwrap_or_else(|| panic!("no relative L2 in {all:?}"));
    Some(value.parse().unwrap())
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The stderr of a run that must have succeeded.
fn ok_stderr(out: &Output) -> String {
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{}\n{log}", out.status);
    log
}

/// Waits up to `limit` for `path` to exist.
fn wait_for(path: &Path, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Steps of the slot-folder work unit: long enough under Wine for a checkpoint, taken by the
/// app API's timer once a second here, to come before the end.
const SLOT_STEPS: u32 = 150;

/// BOINC mode (no arguments) of the Windows build in a slot folder (the files under their
/// logical names) with an `init_data.xml` but no client: the app API runs standalone, the
/// result is `run --dir`'s, and a run killed after a checkpoint resumes to the same bytes.
#[test]
fn windows_app_in_boinc_mode_runs_a_slot_folder_and_resumes() {
    let platform = Platform::Windows;
    let setup = Setup::new(SLOT_STEPS);
    let reference = setup.copy("reference");
    ok_stderr(&run(platform, &reference, &[]));

    let slot = setup.copy("slot");
    std::fs::write(
        slot.join("init_data.xml"),
        "<app_init_data>\n<ncpus>1</ncpus>\n<checkpoint_period>1</checkpoint_period>\n</app_init_data>\n",
    )
    .unwrap();
    let mut child = platform
        .command(&[])
        .current_dir(&slot)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checkpointed = wait_for(&slot.join("checkpoint"), Duration::from_secs(120));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        checkpointed,
        "no checkpoint within 120 s: {}",
        slot_log(&slot, "")
    );
    assert!(!slot.join("delta").exists(), "killed before the end");

    let out = platform.command(&[]).current_dir(&slot).output().unwrap();
    let log = slot_log(&slot, &String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{}\n{log}", out.status);
    assert!(log.contains("under BOINC"), "{log}");
    assert!(log.contains("resuming from checkpoint"), "{log}");
    assert_eq!(
        read(&slot.join("delta")),
        read(&reference.join("delta")),
        "BOINC mode's delta against run --dir's"
    );
    assert!(slot.join("boinc_finish_called").exists(), "{log}");
}

/// What the app wrote to its stderr: `stderr` as captured and the API's `stderr.txt`, where
/// its diagnostics redirect it.
fn slot_log(slot: &Path, stderr: &str) -> String {
    let file = std::fs::read_to_string(slot.join("stderr.txt")).unwrap_or_default();
    format!("{stderr}\n--- stderr.txt:\n{file}")
}
