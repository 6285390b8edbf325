//! The whole round with the real BOINC client in the loop: `aginet-server make-work --out`
//! makes two work units, Debian's `boinc` runs them at once (one suspended and resumed, the
//! client quit and restarted mid-run), `validate`, `assimilate` and `aggregate` take their
//! outputs, and a work unit of the next round, carrying the new signed adapter version, runs
//! under the client again and is accepted. The vision, memory and planner skills each run such
//! a round too, after which the router reads their results and `snapshot` exports them.

use super::boinc_harness::{boinc_api_libs, Client, Prefs, TaskSpec, TaskStatus};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Steps per work unit: a few seconds, long enough to interrupt.
const STEPS: u32 = 300;
const LONG: Duration = Duration::from_secs(300);

/// The server binary, built beside the app by `cargo test --workspace` (as `ci/test.sh` runs).
pub fn server_bin() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_aginet")).with_file_name("aginet-server");
    assert!(
        path.exists(),
        "{} is missing: build the workspace (`cargo test --workspace` does)",
        path.display()
    );
    path
}

/// Runs `aginet-server` with `args`; returns its stdout, failing the test if it fails.
fn server(args: &[&str]) -> String {
    let out = Command::new(server_bin()).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "aginet-server {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `count` work units of the project's current version in `out`, each cut to `steps` steps
/// when given.
fn make_work(project: &Path, out: &Path, count: u32, steps: Option<u32>) -> Vec<PathBuf> {
    let made = server(&[
        "make-work",
        "--project",
        project.to_str().unwrap(),
        "--count",
        &count.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let wus: Vec<PathBuf> = made.lines().map(PathBuf::from).collect();
    for wu in wus.iter().filter(|_| steps.is_some()) {
        let mut config = aginet::format::config::WorkConfig::read(&wu.join("config")).unwrap();
        config.steps = steps.unwrap();
        std::fs::write(wu.join("config"), config.to_json()).unwrap();
    }
    wus
}

fn name(wu: &Path) -> String {
    wu.file_name().unwrap().to_string_lossy().into_owned()
}

/// The client's tasks for the work units: their inputs under the logical names the app opens.
fn tasks(wus: &[PathBuf]) -> Vec<TaskSpec> {
    wus.iter()
        .map(|wu| {
            let mut inputs = vec!["config", "model", "data", "project_key"];
            if wu.join("adapter").exists() {
                inputs.push("adapter");
            }
            TaskSpec::new(&name(wu), wu, &inputs, &["delta", "report"])
        })
        .collect()
}

fn prefs() -> Prefs {
    Prefs {
        leave_apps_in_memory: false,
        checkpoint_interval_s: 1,
        ncpus: 2,
        extra_app_files: boinc_api_libs(),
    }
}

fn task<'a>(tasks: &'a [TaskStatus], name: &str) -> &'a TaskStatus {
    tasks.iter().find(|t| t.name == name).expect("listed")
}

/// Validates and assimilates the outputs of the client's task `name`.
fn validate_and_assimilate(project: &Path, client: &Client, name: &str) {
    let delta = client.output(name, "delta");
    let report = client.output(name, "report");
    let (p, d, r) = (
        project.to_str().unwrap(),
        delta.to_str().unwrap(),
        report.to_str().unwrap(),
    );
    let verdict = server(&["validate", "--project", p, d, r]);
    assert!(verdict.starts_with("valid: "), "{name}: {verdict}");
    let outcome = server(&[
        "assimilate",
        "--project",
        p,
        "--host",
        "harness",
        d,
        r,
        name,
        "1",
    ]);
    assert!(outcome.starts_with("accepted"), "{name}: {outcome}");
}

/// The repository's `models/` folder.
fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// A project of `skill` in `dir`, from the manifests under `models`.
fn init(dir: &Path, models: &Path, skill: &str) -> PathBuf {
    let project = dir.join("project");
    server(&[
        "init",
        "--project",
        project.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
        "--skill",
        skill,
    ]);
    project
}

/// Round 2 of `skill` starts from version 1: its work unit carries the signed adapter, which
/// the app under the client verifies with the project key and trains from; the result is
/// accepted, and the scoreboard then holds `valid` results in all.
fn next_round_runs_under_the_client(
    dir: &Path,
    project: &Path,
    skill: &str,
    steps: Option<u32>,
    valid: usize,
) {
    let app = Path::new(env!("CARGO_BIN_EXE_aginet"));
    let next = make_work(project, &dir.join("round2"), 1, steps);
    let next_name = name(&next[0]);
    assert!(
        next_name.starts_with(&format!("{skill}_v1_")),
        "{next_name}"
    );
    assert!(next[0].join("adapter").exists());
    let client = Client::start(app, &tasks(&next), &prefs());
    client.wait_for("the next round's task to succeed", LONG, |ts| {
        task(ts, &next_name).succeeded()
    });
    let report =
        aginet::format::report::Report::read(&client.output(&next_name, "report")).unwrap();
    assert_eq!(report.adapter_version, 1);
    validate_and_assimilate(project, &client, &next_name);
    let scoreboard = std::fs::read_to_string(project.join("scoreboard.csv")).unwrap();
    assert_eq!(
        scoreboard.lines().filter(|l| l.contains(",valid,")).count(),
        valid,
        "{scoreboard}"
    );
}

#[test]
fn a_round_under_the_real_client_feeds_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let project = init(dir.path(), &models(), "tiny");
    let p = project.to_str().unwrap();
    let app = Path::new(env!("CARGO_BIN_EXE_aginet"));

    // Round 1: two work units at once, one suspended and resumed, the client restarted.
    let wus = make_work(&project, &dir.path().join("round1"), 2, Some(STEPS));
    let names: Vec<String> = wus.iter().map(|w| name(w)).collect();
    let client = Client::start(app, &tasks(&wus), &prefs());
    client.wait_for("both tasks to run at once", LONG, |ts| {
        names
            .iter()
            .all(|n| task(ts, n).executing() && task(ts, n).fraction_done > 0.05)
    });
    client.suspend(&names[0]);
    client.wait_for("the first task to be suspended", LONG, |ts| {
        task(ts, &names[0]).suspended_via_gui
    });
    client.resume(&names[0]);
    client.wait_for("both tasks past 30%", LONG, |ts| {
        names.iter().all(|n| task(ts, n).fraction_done > 0.3)
    });
    let stopped = client.quit();
    assert!(
        stopped.wait_apps_exit(Duration::from_secs(10)),
        "the apps quit with the client"
    );
    let client = stopped.restart();
    client.wait_for("both tasks to succeed", LONG, |ts| {
        names.iter().all(|n| task(ts, n).succeeded())
    });
    for n in &names {
        let log = client.task_stderr(n);
        assert!(log.contains("resuming from checkpoint"), "{n}: {log}");
        validate_and_assimilate(&project, &client, n);
    }
    drop(client);
    let aggregated = server(&["aggregate", "--project", p]);
    assert!(
        aggregated.contains("tiny: version 1 from 2 deltas"),
        "{aggregated}"
    );

    next_round_runs_under_the_client(dir.path(), &project, "tiny", Some(STEPS), 3);
}

/// A round of `skill` under the client: two work units at once (cut to `steps` when given),
/// accepted with the skill's own reward kind, aggregated, and the next round's work unit run
/// from the new version.
fn a_round_of(skill: &str, steps: Option<u32>, reward_kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let project = init(dir.path(), &models(), skill);
    round_of(dir.path(), &project, skill, steps, reward_kind, true);
}

/// [`a_round_of`] in `dir` for the project made there; without the next round's work unit
/// when `next_round` is false.
fn round_of(
    dir: &Path,
    project: &Path,
    skill: &str,
    steps: Option<u32>,
    reward_kind: &str,
    next_round: bool,
) {
    let app = Path::new(env!("CARGO_BIN_EXE_aginet"));
    let wus = make_work(project, &dir.join("round1"), 2, steps);
    let names: Vec<String> = wus.iter().map(|w| name(w)).collect();
    let client = Client::start(app, &tasks(&wus), &prefs());
    client.wait_for("both tasks to succeed", LONG, |ts| {
        names.iter().all(|n| task(ts, n).succeeded())
    });
    for n in &names {
        let report = aginet::format::report::Report::read(&client.output(n, "report")).unwrap();
        assert_eq!(report.reward_kind, reward_kind);
        validate_and_assimilate(project, &client, n);
    }
    drop(client);
    let aggregated = server(&["aggregate", "--project", project.to_str().unwrap()]);
    assert!(
        aggregated.contains(&format!("{skill}: version 1 from 2 deltas")),
        "{aggregated}"
    );
    let valid = if next_round {
        next_round_runs_under_the_client(dir, project, skill, steps, 3);
        3
    } else {
        2
    };
    routed_and_published(dir, project, skill, valid);
}

/// The router reads the skill's `valid` accepted results, and `snapshot` exports version 1 in
/// PEFT's format with what agiNet computes with it as the reference.
fn routed_and_published(dir: &Path, project: &Path, skill: &str, valid: usize) {
    let p = project.to_str().unwrap();
    let routed = server(&["route", "--project", p]);
    assert!(
        routed.starts_with(&format!("{skill}\t"))
            && routed.contains(&format!("over {valid} valid results")),
        "{routed}"
    );
    let public = dir.join("public");
    server(&[
        "snapshot",
        "--project",
        p,
        "--out",
        public.to_str().unwrap(),
    ]);
    let export = public.join("adapters").join(skill).join("v1");
    assert!(export.join("adapter_model.safetensors").exists());
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(export.join("reference.json")).unwrap()).unwrap();
    assert_eq!(reference["skill"], skill);
    assert_eq!(reference["adapter_version"], 1);
}

/// The vision skill's work units take a few tenths of a second: too short to interrupt.
#[test]
fn a_vision_round_under_the_real_client_feeds_the_next_one() {
    a_round_of("vision", None, "accuracy");
}

/// The memory skill's encoder, made by `init` from `models/minilm/model` (`ci/setup.sh` runs
/// `models/minilm/fetch.sh`); 10 steps a work unit.
#[test]
fn a_memory_round_under_the_real_client_feeds_the_next_one() {
    a_round_of("memory", Some(10), "recall_at_5");
}

/// The planner on Gemma 3 270M: the language skill's base made by `convert-base` from the
/// fetched Q4_K_M file (`ci/setup.sh` fetches it) into a models folder beside the two skills'
/// manifests; 4 steps a work unit. The app generates its eval plans under the client, and the
/// validator generates them again and the held-out ones.
#[test]
fn a_planner_round_under_the_real_client_is_aggregated_and_published() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    for skill in ["language", "planner"] {
        std::fs::create_dir_all(models.join(skill)).unwrap();
        let manifest = self::models().join(skill).join("manifest.toml");
        std::fs::copy(manifest, models.join(skill).join("manifest.toml")).unwrap();
    }
    let fetched = super::fixture::gemma_base();
    server(&[
        "convert-base",
        "--in",
        fetched.to_str().unwrap(),
        "--out",
        models
            .join("language/gemma3-270m-q8.gguf")
            .to_str()
            .unwrap(),
    ]);
    let project = init(dir.path(), &models, "planner");
    // The next round's work unit from version 1 is the other skills' test: the planner's
    // would add a minute of Gemma under the client and proves nothing they do not.
    round_of(
        dir.path(),
        &project,
        "planner",
        Some(4),
        "plan_success",
        false,
    );
}
