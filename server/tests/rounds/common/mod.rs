//! Helpers shared by the server's integration tests.

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

/// Cuts the work unit in `wu` to `steps` optimizer steps; its config as now written.
pub fn set_steps(wu: &Path, steps: u32) -> aginet::format::config::WorkConfig {
    let mut config = aginet::format::config::WorkConfig::read(&wu.join("config")).unwrap();
    config.steps = steps;
    std::fs::write(wu.join("config"), config.to_json()).unwrap();
    config
}

/// Runs the work unit in `wu` in-process with `steps` steps, as a volunteer's app would.
pub fn train(wu: &Path, steps: u32) {
    set_steps(wu, steps);
    let files = aginet::app::workunit::WorkFiles::in_dir(wu);
    aginet::app::workunit::run(&files, 1, &mut aginet::learn::train::Unattended)
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

/// The output's stdout, failing the test with stdout and stderr when the command failed.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new project of `skill` in `dir/project` from the manifests under `models`.
pub fn init_project(dir: &Path, models: &Path, skill: &str) -> PathBuf {
    let project = dir.join("project");
    ok(&server(&[
        "init",
        "--project",
        project.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
        "--skill",
        skill,
    ]));
    project
}

/// One work unit of `project` made in `dir/wu`; its folder.
pub fn one_work_unit(project: &Path, dir: &Path) -> PathBuf {
    let made = ok(&server(&[
        "make-work",
        "--project",
        project.to_str().unwrap(),
        "--count",
        "1",
        "--out",
        dir.join("wu").to_str().unwrap(),
    ]));
    PathBuf::from(made.trim())
}

/// Runs the volunteer app (built beside `aginet-server`) on work unit `wu` with `threads`
/// threads, as a volunteer would.
pub fn run_app(wu: &Path, threads: usize) {
    let app = Path::new(env!("CARGO_BIN_EXE_aginet-server")).with_file_name("aginet");
    ok(&Command::new(&app)
        .args(["run", "--threads", &threads.to_string(), "--dir"])
        .arg(wu)
        .output()
        .unwrap());
}

/// `validate` of work unit `wu`'s delta with the report at `report`.
pub fn validate(project: &Path, wu: &Path, report: &Path) -> Output {
    server(&[
        "validate",
        "--project",
        project.to_str().unwrap(),
        wu.join("delta").to_str().unwrap(),
        report.to_str().unwrap(),
    ])
}

/// The held-out rewards before and after of an accepted result's verdict
/// (`valid: held-out reward A -> B`), failing the test on any other verdict.
pub fn valid_rewards(verdict: &str) -> (f64, f64) {
    let numbers: Vec<f64> = verdict
        .trim()
        .strip_prefix("valid: held-out reward ")
        .unwrap_or_else(|| panic!("not accepted: {verdict}"))
        .split(" -> ")
        .map(|x| x.parse().unwrap())
        .collect();
    (numbers[0], numbers[1])
}

/// Checks that the validator refuses `wu`'s delta with a copy of `report` whose claimed reward
/// is off by 0.125: the recomputation catches the forgery.
pub fn forged_claim_is_refused(project: &Path, wu: &Path, report: &aginet::format::report::Report) {
    let mut forged = report.clone();
    forged.reward_after = (report.reward_after + 0.25).min(1.0) - 0.125;
    let path = wu.with_extension("forged-report");
    forged.write(&path).unwrap();
    let refused = String::from_utf8_lossy(&validate(project, wu, &path).stdout).into_owned();
    assert!(
        refused.contains("disagrees with the") && refused.contains("recomputed"),
        "{refused}"
    );
}

/// A models folder in `dir` holding the manifests of `skills` and, as the language and planner
/// manifests expect, the language skill's base made by `convert-base` from the fetched Gemma 3
/// 270M (`models/gemma3-270m/fetch.sh`, which `ci/setup.sh` runs).
pub fn gemma_models(dir: &Path, skills: &[&str]) -> PathBuf {
    let fetched = models().join("gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    assert!(
        fetched.exists(),
        "{} is missing: run models/gemma3-270m/fetch.sh (ci/setup.sh does)",
        fetched.display()
    );
    let out = dir.join("models");
    let mut all = skills.to_vec();
    if !all.contains(&"language") {
        all.push("language");
    }
    for skill in all {
        std::fs::create_dir_all(out.join(skill)).unwrap();
        let manifest = models().join(skill).join("manifest.toml");
        std::fs::copy(manifest, out.join(skill).join("manifest.toml")).unwrap();
    }
    let base = out.join("language/gemma3-270m-q8.gguf");
    ok(&server(&[
        "convert-base",
        "--in",
        fetched.to_str().unwrap(),
        "--out",
        base.to_str().unwrap(),
    ]));
    out
}
