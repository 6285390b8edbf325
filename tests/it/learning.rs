//! The training actually learns: 50 steps on the tiny model lower the held-out loss of the
//! reverse task.

use super::fixture::{stderr, WorkDir};
use aginet::format::report::Report;

#[test]
fn fifty_steps_lower_the_held_out_loss() {
    let wd = WorkDir::tiny(50);
    let out = wd.run_app(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = Report::read(&wd.path("report")).unwrap();
    let (before, after) = (-r.reward_before.ln(), -r.reward_after.ln());
    eprintln!("held-out completion NLL {before:.4} -> {after:.4}");
    assert!(
        after < before - 1.0,
        "held-out NLL {before:.4} -> {after:.4} should drop by more than 1 nat"
    );
    let lines = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("step "))
        .count();
    assert_eq!(lines, 50, "one log line per step");
}
