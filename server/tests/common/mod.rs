//! Helpers shared by the server's integration tests.

// Each test binary compiles this module and uses a subset of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `aginet-server` with `args`.
pub fn server(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aginet-server"))
        .args(args)
        .output()
        .expect("aginet-server runs")
}

/// The repository's `models/` folder.
pub fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// Runs the work unit in `wu` in-process with `steps` steps, as a volunteer's app would.
pub fn train(wu: &Path, steps: u32) {
    let mut config = aginet::config::WorkConfig::read(&wu.join("config")).unwrap();
    config.steps = steps;
    std::fs::write(wu.join("config"), config.to_json()).unwrap();
    let files = aginet::workunit::WorkFiles::in_dir(wu);
    aginet::workunit::run(&files, 1, &mut aginet::train::Unattended)
        .expect("the app runs the work unit");
}

/// Runs `aginet-server demo` with `args` on a project folder `project`; returns its stdout,
/// failing the test when it fails.
pub fn demo(project: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_aginet-server"))
        .arg("demo")
        .args(args)
        .arg("--project")
        .arg(project)
        .arg("--models")
        .arg(models())
        .output()
        .expect("aginet-server runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
