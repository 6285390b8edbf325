//! The differential test of the three builds of the app: the FFI build (Debian's
//! `libboinc_api`), the fully static build speaking the protocol in Rust, and the fully static
//! FFI build (BOINC's own app API compiled from its source) run the same two work units under
//! the real client, steered by the same script (suspend and resume in memory, the client quit
//! and restarted, one task aborted). The client must see the same task states at every step of
//! the script, a progress trajectory with the same start-up and reporting cadence, and the
//! finished task's delta must be byte-identical between the builds (and to an uninterrupted
//! run's).

use super::boinc_e2e::reference_delta;
use super::boinc_harness::{
    ffi_build, static_build, static_ffi_build, AppBuild, Client, Prefs, TaskSpec, TaskStatus,
};
use super::fixture::WorkDir;
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// Steps of the task that runs to the end (about 20 s at 16 ms a step: the fraction the client
/// shows lags the app's by up to 2 s, and the script must still find it running after the
/// client restarts), and of the one that is aborted (it must outlive the whole script).
const STEPS: u32 = 1200;
const ABORTED_STEPS: u32 = 6000;
const LONG: Duration = Duration::from_secs(180);

/// One poll of both tasks.
#[derive(Clone, Debug)]
struct Sample {
    /// Seconds since the client started (the first time).
    t: f64,
    /// The script's step when it was taken.
    phase: &'static str,
    /// `a`'s active task state and fraction done.
    a: (Option<String>, f64),
}

/// What the client showed of one build's run.
#[derive(Debug)]
struct Observation {
    /// The task states after each step of the script, as `boinccmd` shows them.
    milestones: Vec<String>,
    /// Seconds from the client's start to `a`'s first progress report.
    first_progress_s: f64,
    /// Longest time `a` stayed executing without its fraction done moving while it ran
    /// undisturbed, seconds.
    longest_stall_s: f64,
    /// `a`'s delta.
    delta: Vec<u8>,
    /// Every poll, for the failure message.
    samples: Vec<Sample>,
}

fn find<'t>(tasks: &'t [TaskStatus], name: &str) -> &'t TaskStatus {
    tasks.iter().find(|t| t.name == name).expect("task listed")
}

/// The states the script compares: result state, active state, suspended flag, exit status.
fn milestone(step: &str, tasks: &[TaskStatus]) -> String {
    let show = |name: &str| {
        let t = find(tasks, name);
        format!(
            "{name}: {} / {} / gui-suspended {} / exit {:?}",
            t.state,
            t.active_task_state.as_deref().unwrap_or("-"),
            t.suspended_via_gui,
            t.exit_status
        )
    };
    format!("{step}: [{}] [{}]", show("a"), show("b"))
}

struct Recorder {
    t0: Instant,
    phase: std::cell::Cell<&'static str>,
    samples: RefCell<Vec<Sample>>,
}

impl Recorder {
    /// Waits (recording every poll) until `cond` holds.
    fn wait(
        &self,
        client: &Client,
        what: &str,
        cond: impl Fn(&[TaskStatus]) -> bool,
    ) -> Vec<TaskStatus> {
        client.wait_for(what, LONG, |ts| {
            let a = find(ts, "a");
            self.samples.borrow_mut().push(Sample {
                t: self.t0.elapsed().as_secs_f64(),
                phase: self.phase.get(),
                a: (a.active_task_state.clone(), a.fraction_done),
            });
            cond(ts)
        })
    }
}

fn observe(app: &AppBuild) -> Observation {
    let wa = WorkDir::tiny(STEPS);
    let wb = WorkDir::tiny(ABORTED_STEPS);
    let io = (["config", "model", "data"], ["delta", "report"]);
    let tasks = [
        TaskSpec::new("a", wa.dir.path(), &io.0, &io.1),
        TaskSpec::new("b", wb.dir.path(), &io.0, &io.1),
    ];
    let prefs = Prefs {
        leave_apps_in_memory: true,
        checkpoint_interval_s: 1,
        ncpus: 2,
        extra_app_files: app.extra_files.clone(),
    };
    let rec = Recorder {
        t0: Instant::now(),
        phase: std::cell::Cell::new("start-up"),
        samples: RefCell::new(Vec::new()),
    };
    let client = Client::start(&app.path, &tasks, &prefs);
    let mut milestones = Vec::new();

    rec.wait(&client, "a to report progress", |ts| {
        find(ts, "a").fraction_done > 0.0
    });
    rec.phase.set(STEADY);
    let ts = rec.wait(&client, "a past 0.4 and b reporting", |ts| {
        find(ts, "a").fraction_done > 0.4 && find(ts, "b").fraction_done > 0.0
    });
    milestones.push(milestone("started", &ts));
    rec.phase.set("interrupted");
    client.suspend("a");
    let ts = rec.wait(&client, "a suspended", |ts| {
        find(ts, "a").active_task_state.as_deref() == Some("SUSPENDED")
    });
    milestones.push(milestone("a suspended", &ts));
    // The client shows SUSPENDED as soon as it sends `<suspend/>`; the app takes the message
    // within its 0.1 s tick, and a status it sent in that window (or one queued before) may
    // still reach the client at its next 1 s poll. So the fraction is taken once those are in.
    std::thread::sleep(Duration::from_millis(1500));
    let frozen = find(&client.tasks(), "a").fraction_done;
    std::thread::sleep(Duration::from_millis(2500));
    let ts = client.tasks();
    assert_eq!(
        find(&ts, "a").fraction_done,
        frozen,
        "{}: a suspended app reports no progress",
        app.name
    );
    client.resume("a");
    let ts = rec.wait(&client, "a running again", |ts| find(ts, "a").executing());
    milestones.push(milestone("a resumed", &ts));

    rec.wait(&client, "a past 0.6", |ts| {
        find(ts, "a").fraction_done > 0.6
    });
    let client = client.quit().restart();
    let ts = rec.wait(&client, "both running after the restart", |ts| {
        find(ts, "a").executing() && find(ts, "b").executing()
    });
    milestones.push(milestone("client restarted", &ts));

    client.abort("b");
    let ts = rec.wait(&client, "b aborted", |ts| find(ts, "b").state == "aborted");
    milestones.push(milestone("b aborted", &ts));

    let ts = rec.wait(&client, "a to succeed", |ts| find(ts, "a").succeeded());
    milestones.push(milestone("a finished", &ts));

    let samples = rec.samples.into_inner();
    let first_progress_s = samples
        .iter()
        .find(|s| s.a.1 > 0.0)
        .map(|s| s.t)
        .expect("a reported progress");
    let delta = std::fs::read(client.output("a", "delta")).expect("a's delta");
    Observation {
        milestones,
        first_progress_s,
        longest_stall_s: longest_stall(&samples),
        delta,
        samples,
    }
}

/// The script's phase in which `a` runs undisturbed, from its first progress report to 0.4.
const STEADY: &str = "steady";

/// The longest run of polls in the steady phase in which `a`'s fraction done did not move.
fn longest_stall(samples: &[Sample]) -> f64 {
    let mut longest: f64 = 0.0;
    let mut since: Option<(f64, f64)> = None;
    for s in samples.iter().filter(|s| s.phase == STEADY) {
        let executing = s.a.0.as_deref() == Some("EXECUTING") && s.a.1 > 0.0;
        since = match since {
            Some((t, f)) if executing && s.a.1 == f => {
                longest = longest.max(s.t - t);
                Some((t, f))
            }
            _ if executing => Some((s.t, s.a.1)),
            _ => None,
        };
    }
    longest
}

#[test]
fn the_three_builds_behave_the_same_under_the_client() {
    let builds = [ffi_build(), static_build(), static_ffi_build()];
    let seen: Vec<Observation> = builds.iter().map(observe).collect();
    for (b, o) in builds.iter().zip(&seen) {
        eprintln!(
            "{}: first progress report {:.1} s after the client's start, longest stall {:.1} s",
            b.name, o.first_progress_s, o.longest_stall_s
        );
        for m in &o.milestones {
            eprintln!("  {m}");
        }
        assert!(
            o.first_progress_s < 10.0,
            "{}: slow first report: {o:?}",
            b.name
        );
        let steady = o.samples.iter().filter(|s| s.phase == STEADY).count();
        assert!(
            steady >= 5,
            "{}: only {steady} polls while a ran undisturbed",
            b.name
        );
        assert!(
            o.longest_stall_s < 4.0,
            "{}: progress must move at the reporting cadence (1 s sends, 1 s client polls): {:.1} s\n{:#?}",
            b.name,
            o.longest_stall_s,
            o.samples
        );
    }
    for (b, o) in builds.iter().zip(&seen).skip(1) {
        assert_eq!(
            seen[0].milestones, o.milestones,
            "the client sees the same task states of {} and {}",
            builds[0].name, b.name
        );
        assert!(
            seen[0].delta == o.delta,
            "the deltas of {} and {} differ",
            builds[0].name,
            b.name
        );
    }
    assert!(
        seen[0].delta == reference_delta(STEPS),
        "the deltas differ from the uninterrupted run's"
    );
}

/// What a BOINC-mode run (no arguments) leaves in a folder with no `init_data.xml`.
struct StandaloneRun {
    status: Option<i32>,
    delta: Vec<u8>,
    finish_file: String,
    /// stderr.txt's lines without the library's time and pid prefix: `HH:MM:SS (pid): ` from
    /// Debian's 7.20.5 and the protocol in Rust, `YYYY-MM-DD HH:MM:SS (pid): ` from BOINC 8.3.
    stderr_lines: Vec<String>,
}

fn run_standalone(app: &AppBuild, steps: u32) -> StandaloneRun {
    let wd = WorkDir::tiny(steps);
    let out = std::process::Command::new(&app.path)
        .current_dir(wd.dir.path())
        .output()
        .expect("the app runs");
    let stderr = String::from_utf8_lossy(&wd.read("stderr.txt")).into_owned();
    let stderr_lines = stderr
        .lines()
        .map(|l| match l.split_once("): ") {
            Some((prefix, rest)) if prefix.len() < 32 && prefix.contains(" (") => rest.to_string(),
            _ => l.to_string(),
        })
        .collect();
    StandaloneRun {
        status: out.status.code(),
        delta: wd.read("delta"),
        finish_file: String::from_utf8_lossy(&wd.read("boinc_finish_called")).into_owned(),
        stderr_lines,
    }
}

#[test]
fn standalone_every_build_resolves_names_to_itself_and_finishes_alike() {
    let steps = 20;
    let runs: Vec<StandaloneRun> = [ffi_build(), static_build(), static_ffi_build()]
        .iter()
        .map(|b| run_standalone(b, steps))
        .collect();
    for r in &runs {
        assert_eq!(r.status, Some(0), "{:?}", r.stderr_lines);
        assert_eq!(r.finish_file, "0\n");
        assert_eq!(
            r.stderr_lines.first().map(String::as_str),
            Some("Can't open init data file - running in standalone mode"),
            "{:?}",
            r.stderr_lines
        );
        assert_eq!(
            r.stderr_lines.last().map(String::as_str),
            Some("called boinc_finish(0)")
        );
    }
    assert!(
        runs.iter().all(|r| r.delta == runs[0].delta),
        "the standalone deltas differ"
    );
}

#[test]
fn the_static_builds_have_no_dynamic_section_and_need_no_library() {
    for app in [static_build(), static_ffi_build()] {
        let readelf = std::process::Command::new("readelf")
            .arg("-d")
            .arg(&app.path)
            .output()
            .expect("readelf runs");
        let text = String::from_utf8_lossy(&readelf.stdout);
        assert!(
            text.contains("There is no dynamic section") && !text.contains("NEEDED"),
            "{}: {text}",
            app.name
        );
        let ldd = std::process::Command::new("ldd")
            .arg(&app.path)
            .output()
            .expect("ldd runs");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&ldd.stdout),
            String::from_utf8_lossy(&ldd.stderr)
        );
        assert!(
            said.contains("not a dynamic executable"),
            "{}: {said}",
            app.name
        );
    }
}

/// The static FFI app runs from a copy in a folder of its own with an empty environment (no
/// `LD_LIBRARY_PATH`, nothing beside it), so neither Debian's `libboinc_api.so.7` nor
/// `libstdc++.so.6` can be reached: standalone, BOINC's own API resolves the names, and the run
/// gives the protocol-in-Rust build's delta.
#[test]
fn the_static_ffi_build_runs_alone_with_an_empty_environment() {
    let app = static_ffi_build();
    let wd = WorkDir::tiny(12);
    let copy = wd.dir.path().join("aginet-alone");
    std::fs::copy(&app.path, &copy).expect("copying the app");
    let out = std::process::Command::new(&copy)
        .current_dir(wd.dir.path())
        .env_clear()
        .output()
        .expect("the app runs");
    let log = String::from_utf8_lossy(&wd.read("stderr.txt")).into_owned();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("Can't open init data file - running in standalone mode"),
        "BOINC's own API runs: {log}"
    );
    assert!(
        wd.read("delta") == run_standalone(&static_build(), 12).delta,
        "the delta differs from the protocol-in-Rust build's"
    );
}
