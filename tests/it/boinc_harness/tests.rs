//! The harness's own tests: a shell-script "app" run, suspended, aborted, killed and restarted
//! under the real client.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{boinc_api_libs, Client, Prefs, TaskSpec};

/// A POSIX shell "app": sleeps as many seconds as its `config` input says, writes
/// `<logical>:<config>` to each output it has (`delta`, `report`) and finishes the BOINC way.
const SCRIPT_APP: &str = r#"#!/bin/sh
resolve() { sed -n 's:.*<soft_link>\(.*\)</soft_link>.*:\1:p' "$1"; }
cfg=$(cat "$(resolve config)")
echo "script app in $(pwd), config $cfg, LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >&2
sleep "$cfg"
for out in delta report; do
  [ -f "$out" ] && printf '%s:%s' "$out" "$cfg" > "$(resolve $out)"
done
touch boinc_finish_called
"#;

/// Writes the script app and, per task, a work-unit folder whose `config` holds `sleep_s`.
fn script_setup(tasks: &[&str], sleep_s: u32) -> (tempfile::TempDir, PathBuf, Vec<TaskSpec>) {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("script-app");
    fs::write(&app, SCRIPT_APP).unwrap();
    let specs = tasks
        .iter()
        .map(|name| {
            let wu = tmp.path().join(name);
            fs::create_dir(&wu).unwrap();
            fs::write(wu.join("config"), sleep_s.to_string()).unwrap();
            TaskSpec::new(name, &wu, &["config"], &["delta", "report"])
        })
        .collect();
    (tmp, app, specs)
}

#[test]
fn harness_runs_a_script_app_to_completion() {
    let t0 = Instant::now();
    let (_tmp, app, specs) = script_setup(&["t1"], 2);
    let prefs = Prefs {
        extra_app_files: boinc_api_libs(),
        ..Prefs::default()
    };
    let client = Client::start(&app, &specs, &prefs);
    client.wait_for("t1 executing", Duration::from_secs(10), |ts| {
        ts.iter()
            .any(|t| t.name == "t1" && t.executing() && t.pid.is_some())
    });
    let done = client.wait_for("t1 done", Duration::from_secs(15), |ts| {
        ts[0].ready_to_report
    });
    assert!(done[0].succeeded(), "{done:#?}");
    assert_eq!(done[0].exit_status, Some(0));
    assert_eq!(client.result_exit_status("t1"), Some(0));
    // The client puts the project dir, holding the BOINC libraries, first in LD_LIBRARY_PATH.
    let stderr = client.task_stderr("t1");
    let libs = format!(
        "LD_LIBRARY_PATH=../../projects/{}:.:../..\n",
        client.escaped
    );
    assert!(stderr.contains(&libs), "{stderr}");
    assert!(client.project_dir().join("libboinc_api.so.7").is_file());
    for out in ["delta", "report"] {
        assert_eq!(
            fs::read_to_string(client.output("t1", out)).unwrap(),
            format!("{out}:2")
        );
    }
    let stopped = client.quit();
    assert!(stopped.app_pids().is_empty());
    eprintln!("one script task: {:?}", t0.elapsed());
}

#[test]
fn harness_runs_two_tasks_at_once() {
    let t0 = Instant::now();
    let (_tmp, app, specs) = script_setup(&["a", "b"], 5);
    let prefs = Prefs {
        ncpus: 2,
        ..Prefs::default()
    };
    let client = Client::start(&app, &specs, &prefs);
    client.wait_for(
        "a and b executing together",
        Duration::from_secs(10),
        |ts| ts.len() == 2 && ts.iter().all(|t| t.executing()),
    );
    let done = client.wait_for("a and b done", Duration::from_secs(20), |ts| {
        ts.iter().all(|t| t.ready_to_report)
    });
    assert!(done.iter().all(|t| t.succeeded()), "{done:#?}");
    assert_eq!(
        fs::read_to_string(client.output("b", "delta")).unwrap(),
        "delta:5"
    );
    eprintln!("two script tasks: {:?}", t0.elapsed());
}

#[test]
fn harness_aborts_suspends_kills_and_restarts() {
    let t0 = Instant::now();
    let (_tmp, app, specs) = script_setup(&["s", "x"], 3);
    let prefs = Prefs {
        ncpus: 2,
        ..Prefs::default()
    };
    let client = Client::start(&app, &specs, &prefs);
    client.wait_for("s and x executing", Duration::from_secs(10), |ts| {
        ts.iter().all(|t| t.executing())
    });
    client.abort("x");
    client.wait_for("x aborted", Duration::from_secs(5), |_| {
        let x = client.task("x");
        x.state == "aborted" && x.ready_to_report
    });
    // boinccmd shows the abort at once; client_state.xml only once the client next writes it.
    assert_eq!(client.task("x").exit_status, Some(203));
    client.suspend("s");
    client.wait_for("s suspended", Duration::from_secs(5), |ts| {
        ts[0].suspended_via_gui && ts[0].active_task_state.as_deref() == Some("SUSPENDED")
    });
    client.resume("s");
    client.wait_for("s resumed", Duration::from_secs(5), |ts| {
        !ts[0].suspended_via_gui
    });

    // A script ignores the client's messages, so it outlives a killed client.
    let stopped = client.kill9();
    assert!(!stopped.app_pids().is_empty());
    assert!(stopped.wait_apps_exit(Duration::from_secs(10)));
    // The orphan of s finished; the new client finds its `boinc_finish_called` at start-up
    // and counts s done without running it again.
    let client = stopped.restart();
    let done = client.wait_for("s done", Duration::from_secs(15), |ts| {
        ts.iter().all(|t| t.ready_to_report)
    });
    assert!(client.task("s").succeeded(), "{done:#?}");
    assert_eq!(
        fs::read_to_string(client.output("s", "report")).unwrap(),
        "report:3"
    );
    let stopped = client.quit();
    assert_eq!(stopped.result_exit_status("s"), Some(0));
    assert_eq!(stopped.result_exit_status("x"), Some(203));
    assert_eq!(stopped.task_stderr("s").matches("script app in").count(), 1);
    assert!(stopped.task_stderr("x").contains("aborted by user"));
    eprintln!("abort, suspend, kill -9, restart: {:?}", t0.elapsed());
}
