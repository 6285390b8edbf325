//! The step time of every skill's fine-tune, as a volunteer's app runs it: for each skill, a
//! project made by `aginet-server init` from the repository's manifests, one work unit from
//! `make-work`, and the app's own `workunit::run` in this process, cut to a few steps, on a
//! fixed thread count. Prints per skill the base's size, the batch, the median and fastest step
//! (the time between the loop asking to go on and its progress report, which covers the batch's
//! forward, backward and optimizer step) and the rest of the run's wall time (loading, and the
//! reward on the eval split before and after, which for the planner means generating plans).
//!
//! `cargo bench -p aginet-server --bench skill_steps [-- --threads N] [SKILL ...]`
//! (default: 2 threads; every skill whose base can be made here: language and planner need
//! `models/gemma3-270m/fetch.sh` then `convert-base`, memory `models/minilm/fetch.sh`).

use aginet::learn::train::{Control, Host};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Each skill and the steps timed of its work unit.
const SKILLS: [(&str, u32); 5] = [
    ("tiny", 30),
    ("vision", 40),
    ("memory", 10),
    ("language", 8),
    ("planner", 8),
];

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// Runs `aginet-server` with `args`: its stdout, or its error output.
fn server(args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_aginet-server"))
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// A host that times each step: from the loop's poll to its progress report.
#[derive(Default)]
struct StepTimer {
    started: Option<Instant>,
    steps: Vec<Duration>,
}

impl Host for StepTimer {
    fn poll(&mut self) -> Control {
        self.started = Some(Instant::now());
        Control::Continue
    }
    fn time_to_checkpoint(&mut self, _step: u32) -> bool {
        false
    }
    fn progress(&mut self, _fraction: f64) {
        if let Some(t0) = self.started.take() {
            self.steps.push(t0.elapsed());
        }
    }
    fn log(&mut self, _line: &str) {}
}

/// A work unit of `skill` in `dir`, with `steps` steps; its folder.
fn work_unit(dir: &Path, skill: &str, steps: u32) -> Result<PathBuf, String> {
    let project = dir.join("project");
    let p = project.to_str().expect("UTF-8 path");
    let m = models();
    server(&[
        "init",
        "--project",
        p,
        "--models",
        m.to_str().unwrap(),
        "--skill",
        skill,
    ])?;
    let out = dir.join("wu");
    let made = server(&[
        "make-work",
        "--project",
        p,
        "--count",
        "1",
        "--out",
        out.to_str().unwrap(),
    ])?;
    let wu = PathBuf::from(made.trim());
    let mut config =
        aginet::format::config::WorkConfig::read(&wu.join("config")).map_err(|e| e.to_string())?;
    config.steps = steps;
    std::fs::write(wu.join("config"), config.to_json()).map_err(|e| e.to_string())?;
    Ok(wu)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut threads = 2;
    let mut wanted = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--threads" {
            threads = it.next().and_then(|n| n.parse().ok()).expect("--threads N");
        } else {
            wanted.push(a.clone());
        }
    }
    aginet::nn::threads::configure(threads);
    println!("skill steps on {threads} threads (median / fastest step; the rest of the run: load and eval before and after)");
    println!(
        "{:<9} {:>12} {:>6} {:>6} {:>11} {:>11} {:>9}",
        "skill", "base bytes", "batch", "steps", "median ms", "fastest ms", "rest s"
    );
    for (skill, steps) in SKILLS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == skill) {
            continue;
        }
        let dir = tempfile::tempdir().expect("a temporary folder");
        let wu = match work_unit(dir.path(), skill, steps) {
            Ok(wu) => wu,
            Err(e) => {
                println!("{skill:<9} skipped: {}", e.lines().last().unwrap_or(""));
                continue;
            }
        };
        let config = aginet::format::config::WorkConfig::read(&wu.join("config")).expect("config");
        let base = std::fs::metadata(wu.join("model"))
            .map(|m| m.len())
            .unwrap_or(0);
        let files = aginet::app::workunit::WorkFiles::in_dir(&wu);
        let mut timer = StepTimer::default();
        let t0 = Instant::now();
        aginet::app::workunit::run(&files, threads, &mut timer).expect("the work unit runs");
        let wall = t0.elapsed();
        let mut steps_taken = timer.steps.clone();
        steps_taken.sort();
        let median = steps_taken[steps_taken.len() / 2];
        let stepping: Duration = steps_taken.iter().sum();
        println!(
            "{skill:<9} {base:>12} {:>6} {:>6} {:>11.1} {:>11.1} {:>9.1}",
            config.hyper.batch_size,
            steps_taken.len(),
            millis(median),
            millis(steps_taken[0]),
            (wall - stepping).as_secs_f64()
        );
    }
}
