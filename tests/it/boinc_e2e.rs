//! The app under Debian's real BOINC client, on the tiny model: completion, suspend/resume,
//! quit/restart, a killed client, abort, and a corrupt input. Interrupted runs must end with the
//! delta bytes of an uninterrupted run. Every scenario runs with each build of the app: the FFI
//! build linked to Debian's libraries (module `ffi`), the fully static one speaking the protocol
//! in Rust (module `static_build`) and the fully static one linking BOINC's own app API
//! compiled from its source (module `static_ffi`).

use super::boinc_harness::{
    ffi_build, static_build, static_ffi_build, AppBuild, Client, Prefs, StoppedClient, TaskSpec,
    TaskStatus,
};
use super::fixture::{stderr, WorkDir};
use aginet::format::delta::Delta;
use aginet::format::report::Report;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Steps per task: long enough (a few seconds) to interrupt mid-run.
const STEPS: u32 = 400;
const TASK: &str = "t";
const LONG: Duration = Duration::from_secs(180);

/// The delta of an uninterrupted standalone run of the same work unit, on one thread.
pub fn reference_delta(steps: u32) -> Vec<u8> {
    reference_delta_batch(steps, None)
}

/// [`reference_delta`] of a task made by [`WorkDir::tiny_batch`].
fn reference_delta_batch(steps: u32, batch: Option<usize>) -> Vec<u8> {
    /// Reference deltas by (steps, batch).
    type Refs = BTreeMap<(u32, Option<usize>), Vec<u8>>;
    static REFS: Mutex<Refs> = Mutex::new(BTreeMap::new());
    let mut refs = REFS.lock().unwrap_or_else(|e| e.into_inner());
    refs.entry((steps, batch))
        .or_insert_with(|| {
            let wd = WorkDir::tiny_batch(steps, batch);
            let out = wd.run_app(&["--threads", "1"]);
            assert!(out.status.success(), "{}", stderr(&out));
            wd.read("delta")
        })
        .clone()
}

fn prefs(app: &AppBuild, leave_apps_in_memory: bool) -> Prefs {
    Prefs {
        leave_apps_in_memory,
        checkpoint_interval_s: 1,
        ncpus: 1,
        extra_app_files: app.extra_files.clone(),
    }
}

/// Steps of the killed-client test: the app needs about 10 s to notice the missing heartbeat,
/// so the task must run well past that after the kill, and the client keeps only the last 64 KB
/// of a task's stderr (about 800 step lines), where the resume line must still be. So the test
/// takes fewer, slower steps: batch [`LONG_BATCH`] instead of 8. A tiny step of batch 8 takes
/// 15–30 ms on one thread here, which made 600 of them too short once the head got faster.
const LONG_STEPS: u32 = 400;
/// The killed-client test's batch size.
const LONG_BATCH: usize = 32;

fn start(app: &AppBuild, wd: &WorkDir, prefs: &Prefs) -> Client {
    let task = TaskSpec::new(
        TASK,
        wd.dir.path(),
        &["config", "model", "data"],
        &["delta", "report"],
    );
    Client::start(&app.path, &[task], prefs)
}

fn task(tasks: &[TaskStatus]) -> &TaskStatus {
    tasks
        .iter()
        .find(|t| t.name == TASK)
        .expect("our task is listed")
}

/// Waits until the task has done more than `fraction` of its work.
fn wait_past(client: &Client, fraction: f64) -> f64 {
    let tasks = client.wait_for(&format!("fraction done > {fraction}"), LONG, |ts| {
        task(ts).fraction_done > fraction
    });
    task(&tasks).fraction_done
}

/// Waits for success and checks the outputs: formats, hash, and the reference bytes.
fn finish_and_check(client: &Client, steps: u32) {
    finish_and_check_batch(client, steps, None)
}

/// [`finish_and_check`] for a task made by [`WorkDir::tiny_batch`].
fn finish_and_check_batch(client: &Client, steps: u32, batch: Option<usize>) {
    client.wait_for("the task to succeed", LONG, |ts| task(ts).succeeded());
    let delta_path = client.output(TASK, "delta");
    let bytes = std::fs::read(&delta_path).unwrap();
    Delta::read(&delta_path).expect("the delta parses");
    let report = Report::read(&client.output(TASK, "report")).expect("the report parses");
    assert_eq!(
        report.delta_sha256,
        aginet::format::files::sha256_hex(&bytes)
    );
    assert_eq!(report.steps, steps);
    assert_eq!(
        report.threads, 1,
        "the thread count comes from the client's ncpus"
    );
    assert!(
        bytes == reference_delta_batch(steps, batch),
        "the delta differs from the uninterrupted standalone run's"
    );
}

fn runs_to_completion_with_advancing_progress(app: &AppBuild) {
    let wd = WorkDir::tiny(STEPS);
    let client = start(app, &wd, &prefs(app, false));
    let first = wait_past(&client, 0.05);
    let later = wait_past(&client, first + 0.2);
    assert!(later > first, "fraction done advances: {first} -> {later}");
    finish_and_check(&client, STEPS);
    let log = client.task_stderr(TASK);
    assert!(
        log.contains("under BOINC, 1 threads") && log.contains(&format!("done: {STEPS} steps")),
        "{log}"
    );
    // The build says what it is: version, commit and the BOINC API it speaks.
    let start = log.lines().find(|l| l.contains("under BOINC")).unwrap();
    assert!(
        start.contains(&format!("aginet {} (", env!("CARGO_PKG_VERSION")))
            && start.contains(app.api),
        "the start line names the {} build's BOINC API ({}): {start}",
        app.name,
        app.api
    );
    let report = Report::read(&client.output(TASK, "report")).unwrap();
    assert!(
        start.contains(&report.app_version),
        "the report's app_version {:?} is the start line's",
        report.app_version
    );
}

/// CPU time (user + system, in clock ticks) the process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

fn suspend_and_resume(app: &AppBuild, leave_apps_in_memory: bool) {
    let wd = WorkDir::tiny(STEPS);
    let client = start(app, &wd, &prefs(app, leave_apps_in_memory));
    wait_past(&client, 0.3);
    client.suspend(TASK);
    let tasks = client.wait_for("the task to be suspended", LONG, |ts| {
        task(ts).suspended_via_gui
    });
    let at_suspend = task(&tasks).fraction_done;
    if leave_apps_in_memory {
        // The app sees the request within a step, then sleeps: its CPU time stops growing.
        std::thread::sleep(Duration::from_secs(1));
        let pids = client.app_pids();
        assert_eq!(pids.len(), 1, "the app stays in memory");
        let before = cpu_ticks(pids[0]);
        std::thread::sleep(Duration::from_secs(2));
        let used = cpu_ticks(pids[0]) - before;
        assert!(
            used <= 10,
            "a suspended app computes nothing: {used} ticks in 2 s"
        );
    } else {
        assert!(
            client.wait_apps_exit(Duration::from_secs(10)),
            "suspend asks the app to quit"
        );
        let log = client.task_stderr(TASK);
        assert!(
            log.contains("(Some(Quit))"),
            "the app quit on the client's request: {log}"
        );
    }
    client.resume(TASK);
    let tasks = client.wait_for("the task to run again", LONG, |ts| task(ts).executing());
    assert!(
        task(&tasks).fraction_done >= at_suspend - 0.05,
        "resumed from the checkpoint, not from scratch"
    );
    finish_and_check(&client, STEPS);
}

/// Runs a task of `steps` steps to `fraction`, stops the client with `stop`, checks the app
/// exits within `exit_within` for `reason`, restarts the client, and checks the task resumes
/// from its checkpoint to the reference bytes.
fn stop_client_and_restart(
    app: &AppBuild,
    (steps, batch): (u32, Option<usize>),
    fraction: f64,
    stop: impl FnOnce(Client) -> StoppedClient,
    exit_within: Duration,
    reason: &str,
) {
    let wd = WorkDir::tiny_batch(steps, batch);
    let client = start(app, &wd, &prefs(app, false));
    wait_past(&client, fraction);
    let stopped = stop(client);
    assert!(
        stopped.wait_apps_exit(exit_within),
        "the app exits once the client is gone"
    );
    let client = stopped.restart();
    let log = client.task_stderr(TASK);
    assert!(log.contains(reason), "the app stopped with {reason}: {log}");
    finish_and_check_batch(&client, steps, batch);
    let log = client.task_stderr(TASK);
    assert!(log.contains("resuming from checkpoint"), "{log}");
}

fn client_quit_and_restart_mid_run(app: &AppBuild) {
    stop_client_and_restart(
        app,
        (STEPS, None),
        0.3,
        Client::quit,
        Duration::from_secs(10),
        "(Some(Quit))",
    );
}

fn client_killed_and_restarted_mid_run(app: &AppBuild) {
    // The app notices the missing heartbeat after about 10 s.
    stop_client_and_restart(
        app,
        (LONG_STEPS, Some(LONG_BATCH)),
        0.05,
        Client::kill9,
        Duration::from_secs(30),
        "(Some(ClientGone))",
    );
}

fn aborted_task_exits_within_seconds(app: &AppBuild) {
    let wd = WorkDir::tiny(STEPS);
    let client = start(app, &wd, &prefs(app, false));
    wait_past(&client, 0.1);
    let t0 = std::time::Instant::now();
    client.abort(TASK);
    assert!(
        client.wait_apps_exit(Duration::from_secs(5)),
        "the app exits within 5 s of the abort"
    );
    let tasks = client.wait_for("the task to be aborted", LONG, |ts| {
        task(ts).state == "aborted"
    });
    assert!(!task(&tasks).succeeded());
    eprintln!("abort to exit: {:.1} s", t0.elapsed().as_secs_f64());
}

fn corrupt_model_is_a_compute_error_with_the_reason(app: &AppBuild) {
    let wd = WorkDir::tiny(STEPS);
    let model = wd.read("model");
    std::fs::write(wd.path("model"), &model[..model.len() - 4096]).unwrap();
    wd.pin_model_sha();
    let client = start(app, &wd, &prefs(app, false));
    let tasks = client.wait_for("the task to end", Duration::from_secs(60), |ts| {
        task(ts).ready_to_report
    });
    let t = task(&tasks);
    assert!(!t.succeeded(), "{t:?}");
    assert_eq!(
        t.exit_status,
        Some(aginet::app::exit::MODEL as i32),
        "{t:?}"
    );
    let log = client.task_stderr(TASK);
    assert!(
        log.contains("lies past the end of the file"),
        "the reason reaches the task's stderr: {log}"
    );
    assert!(
        !log.contains("panicked") && !log.contains("SIGSEGV"),
        "{log}"
    );
}

/// The scenarios above as tests of one build of the app.
macro_rules! scenarios_for {
    ($module:ident, $build:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn a_task_runs_to_completion_with_advancing_progress() {
                runs_to_completion_with_advancing_progress(&$build);
            }

            #[test]
            fn suspend_and_resume_with_apps_left_in_memory() {
                suspend_and_resume(&$build, true);
            }

            #[test]
            fn suspend_and_resume_with_apps_removed_from_memory() {
                suspend_and_resume(&$build, false);
            }

            #[test]
            fn client_quit_and_restart_mid_run() {
                super::client_quit_and_restart_mid_run(&$build);
            }

            #[test]
            fn client_killed_and_restarted_mid_run() {
                super::client_killed_and_restarted_mid_run(&$build);
            }

            #[test]
            fn an_aborted_task_exits_within_seconds() {
                aborted_task_exits_within_seconds(&$build);
            }

            #[test]
            fn a_corrupt_model_is_a_compute_error_with_the_reason() {
                corrupt_model_is_a_compute_error_with_the_reason(&$build);
            }
        }
    };
}

scenarios_for!(ffi, ffi_build());
scenarios_for!(static_build, static_build());
scenarios_for!(static_ffi, static_ffi_build());
