//! Determinism and resumption: the same work unit gives the same delta bytes, however often the
//! run is stopped, killed or crashes while writing its checkpoint.

use super::fixture::{stderr, WorkDir};
use aginet::app::workunit::{self, RunOutcome, WorkFiles};
use aginet::format::checkpoint::Checkpoint;
use aginet::format::files::temp_path;
use aginet::learn::train::{Control, Host};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const STEPS: u32 = 12;

/// A host that checkpoints after every step and asks to stop before step `stop_at + 1`.
struct StopAt {
    stop_at: Option<u32>,
    steps_done: u32,
}

impl Host for StopAt {
    fn poll(&mut self) -> Control {
        if Some(self.steps_done) == self.stop_at {
            Control::Stop
        } else {
            Control::Continue
        }
    }
    fn time_to_checkpoint(&mut self, step: u32) -> bool {
        self.steps_done = step;
        true
    }
    fn log(&mut self, _line: &str) {}
}

fn run_in_process(wd: &WorkDir, stop_at: Option<u32>) -> RunOutcome {
    let files = WorkFiles::in_dir(wd.dir.path());
    workunit::run(
        &files,
        2,
        &mut StopAt {
            stop_at,
            steps_done: 0,
        },
    )
    .expect("run succeeds")
}

/// The delta of an uninterrupted run of the tiny work unit.
fn reference_delta() -> Vec<u8> {
    let wd = WorkDir::tiny(STEPS);
    assert!(matches!(run_in_process(&wd, None), RunOutcome::Finished(_)));
    wd.read("delta")
}

#[test]
fn same_work_unit_gives_identical_delta_bytes() {
    let a = reference_delta();
    let b = reference_delta();
    assert_eq!(a, b);
    let wd = WorkDir::tiny(STEPS);
    let out = wd.run_app(&["--threads", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        wd.read("delta"),
        a,
        "the binary and the library agree byte for byte"
    );
    let report = aginet::format::report::Report::read(&wd.path("report")).unwrap();
    assert_eq!(report.delta_sha256, aginet::format::files::sha256_hex(&a));
    assert_eq!(report.steps, STEPS);
    assert_eq!(report.loss_curve.len(), STEPS as usize);
    assert!(
        !wd.path("checkpoint").exists(),
        "the checkpoint is removed once the results are written"
    );
}

#[test]
fn stopping_at_any_step_and_resuming_gives_identical_bytes() {
    let want = reference_delta();
    for stop in [1, 2, 5, STEPS - 1] {
        let wd = WorkDir::tiny(STEPS);
        let first = run_in_process(&wd, Some(stop));
        assert!(
            matches!(first, RunOutcome::Stopped { step } if step == stop),
            "{first:?}"
        );
        assert!(!wd.path("delta").exists());
        let ck = Checkpoint::read(&wd.path("checkpoint"))
            .unwrap()
            .expect("checkpoint written");
        assert_eq!(ck.header.step, stop);
        assert!(matches!(run_in_process(&wd, None), RunOutcome::Finished(_)));
        assert_eq!(wd.read("delta"), want, "stopped at step {stop}");
        let report = aginet::format::report::Report::read(&wd.path("report")).unwrap();
        assert_eq!(
            report.loss_curve.len(),
            STEPS as usize,
            "the loss curve spans both runs"
        );
    }
}

#[test]
fn crash_during_checkpoint_write_leaves_a_resumable_state() {
    let want = reference_delta();
    let wd = WorkDir::tiny(STEPS);
    run_in_process(&wd, Some(4));
    // A crash half-way through writing the next checkpoint leaves a torn temp file beside the
    // last good one: it must be ignored and overwritten.
    let good = wd.read("checkpoint");
    std::fs::write(temp_path(&wd.path("checkpoint")), &good[..good.len() / 2]).unwrap();
    assert!(matches!(run_in_process(&wd, None), RunOutcome::Finished(_)));
    assert_eq!(wd.read("delta"), want);
}

#[test]
fn torn_checkpoint_is_set_aside_and_the_run_starts_over() {
    let want = reference_delta();
    let wd = WorkDir::tiny(STEPS);
    run_in_process(&wd, Some(6));
    // On a file system that lost the rename's ordering the checkpoint itself may be torn.
    let good = wd.read("checkpoint");
    std::fs::write(wd.path("checkpoint"), &good[..good.len() / 3]).unwrap();
    assert!(matches!(run_in_process(&wd, None), RunOutcome::Finished(_)));
    assert_eq!(wd.read("delta"), want);
    assert!(
        wd.path("checkpoint.corrupt").exists(),
        "the torn checkpoint is kept for inspection"
    );
}

#[test]
fn checkpoint_of_other_inputs_is_ignored() {
    let want = reference_delta();
    let wd = WorkDir::tiny(STEPS);
    run_in_process(&wd, Some(3));
    let mut c = wd.config();
    c.seed += 1;
    wd.write_config(&c);
    assert!(matches!(run_in_process(&wd, None), RunOutcome::Finished(_)));
    assert_ne!(
        wd.read("delta"),
        want,
        "a different seed trains differently, from scratch"
    );
}

#[test]
fn killed_process_resumes_to_identical_bytes() {
    let want = reference_delta();
    for kill_after in [3, 8] {
        let wd = WorkDir::tiny(STEPS);
        let mut child = Command::new(env!("CARGO_BIN_EXE_aginet"))
            .args(["run", "--threads", "2", "--checkpoint-every", "1", "--dir"])
            .arg(wd.dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let marker = format!("step {kill_after:>5}/");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().starts_with(&marker) {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL: no chance to clean up.
        child.wait().unwrap();
        let out = wd.run_app(&["--threads", "2"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("resuming from checkpoint"),
            "{}",
            stderr(&out)
        );
        assert_eq!(wd.read("delta"), want, "killed after step {kill_after}");
    }
}
