//! Validation throughput per skill: results validated per minute per core by the one-shot
//! `validate` (a process per result that loads the skill's base, as BOINC's `script_validator`
//! starts it) against the same command handing the result to a running resident validator
//! (`aginet-server validator`), with the base's load time shown on its own. Both must give the
//! same verdict, to the bit (the verdict files are compared).
//!
//! `cargo build --release --workspace && cargo bench -p aginet-server --bench validate
//! [-- --skills tiny,vision,memory,language,planner --results 3 --threads 1 --steps 10]`
//! (each skill's result is one work unit trained by the release `aginet` app for `--steps`
//! steps; every process runs `--threads` threads, so the figures are per that many cores).

mod common;

use aginet::format::manifest::Manifest;
use aginet::learn::score::{Scorer, Skill};
use clap::Parser;
use common::{app, run};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// What is measured.
#[derive(Parser, Debug)]
struct Options {
    /// Skills to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tiny,vision,memory,language,planner"
    )]
    skills: Vec<String>,
    /// Validations timed per way.
    #[arg(long, default_value_t = 3)]
    results: usize,
    /// Threads of every process (the figures are per this many cores).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Optimizer steps of the validated work unit.
    #[arg(long, default_value_t = 10)]
    steps: u32,
    /// Ignored: cargo passes it to every bench target.
    #[arg(long, hide = true)]
    bench: bool,
}

fn server(threads: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aginet-server"));
    cmd.env("RAYON_NUM_THREADS", threads.to_string())
        .env("CANDLE_NUM_THREADS", "1");
    cmd
}

/// One measured skill.
struct Row {
    skill: String,
    load: f64,
    one_shot: f64,
    resident_first: f64,
    resident: f64,
}

fn main() {
    let o = Options::parse();
    let root = tempfile::tempdir().expect("a temporary folder");
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut rows = Vec::new();
    for skill in &o.skills {
        let dir = root.path().join(skill);
        rows.push(measure(&o, &dir, &models, skill));
    }
    println!(
        "\n{} thread(s) per process; seconds per result (median of {}), results per minute per core",
        o.threads, o.results
    );
    println!(
        "{:<10} {:>10} {:>10} {:>12} {:>10} {:>12} {:>12} {:>8}",
        "skill",
        "base load",
        "one-shot",
        "1st resident",
        "resident",
        "one-shot/min",
        "resident/min",
        "speedup"
    );
    for r in &rows {
        let per_min = |s: f64| 60.0 / s / o.threads as f64;
        println!(
            "{:<10} {:>10.3} {:>10.3} {:>12.3} {:>10.3} {:>12.1} {:>12.1} {:>7.2}×",
            r.skill,
            r.load,
            r.one_shot,
            r.resident_first,
            r.resident,
            per_min(r.one_shot),
            per_min(r.resident),
            r.one_shot / r.resident
        );
    }
}

/// Makes `skill`'s project and one result in `dir`, then times both ways of validating it.
fn measure(o: &Options, dir: &Path, models: &Path, skill: &str) -> Row {
    let project = dir.join("project");
    let p = project.to_str().unwrap();
    run(server(o.threads)
        .args(["init", "--project", p, "--skill", skill, "--models"])
        .arg(models));
    let made = run(server(o.threads)
        .args(["make-work", "--project", p, "--count", "1", "--out"])
        .arg(dir.join("wu")));
    let wu = PathBuf::from(made.trim());
    let mut config = aginet::format::config::WorkConfig::read(&wu.join("config")).unwrap();
    config.steps = o.steps;
    std::fs::write(wu.join("config"), config.to_json()).unwrap();
    run(Command::new(app())
        .args(["run", "--threads", &o.threads.to_string(), "--dir"])
        .arg(&wu));
    let files = [wu.join("delta"), wu.join("report")];
    let validate = |local: bool| {
        let mut cmd = server(o.threads);
        cmd.args(["validate", "--project", p]);
        if local {
            cmd.arg("--local");
        }
        let start = Instant::now();
        let out = cmd.args(&files).output().unwrap();
        let seconds = start.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.starts_with("valid:"),
            "{skill}: the result is not valid ({text}{}): try more --steps",
            String::from_utf8_lossy(&out.stderr)
        );
        seconds
    };
    let verdicts = project.join("state/verdicts");
    let verdict = || {
        let entry = std::fs::read_dir(&verdicts)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        std::fs::read(entry.path()).unwrap()
    };

    // The version's held-out reward is cached by the first validation; both ways find it.
    validate(true);
    let one_shot = median((0..o.results).map(|_| validate(true)).collect());
    let local_verdict = verdict();

    let load = median(
        (0..o.results)
            .map(|_| load_seconds(&project, skill))
            .collect(),
    );

    let mut resident = Resident::start(o.threads, &project);
    let resident_first = validate(false);
    let steady = median((0..o.results).map(|_| validate(false)).collect());
    resident.stop();
    assert_eq!(
        local_verdict,
        verdict(),
        "{skill}: the resident validator's verdict differs from the one-shot's"
    );
    println!(
        "{skill}: base load {load:.3} s, one-shot {one_shot:.3} s, resident {steady:.3} s \
         (first {resident_first:.3} s)"
    );
    Row {
        skill: skill.to_string(),
        load,
        one_shot,
        resident_first,
        resident: steady,
    }
}

/// Seconds to load the project's `skill` base for scoring (in this process, which runs on
/// rayon's default pool: the load reads and builds, it computes little).
fn load_seconds(project: &Path, skill: &str) -> f64 {
    let dir = project.join("skills").join(skill);
    let manifest = Manifest::read(&dir.join("manifest.toml")).unwrap();
    let shapes = aginet::format::adapter::factor_shapes(
        &manifest.architecture.sites(&manifest.lora.targets).unwrap(),
        manifest.lora.rank,
        true,
    );
    let factors = shapes
        .iter()
        .map(|(name, shape)| {
            let t = candle_core::Tensor::zeros(
                shape.clone(),
                candle_core::DType::F32,
                &candle_core::Device::Cpu,
            );
            (name.clone(), t.unwrap())
        })
        .collect();
    let skill = Skill::of(&manifest);
    let start = Instant::now();
    let scorer = Scorer::load(&dir.join("base.gguf"), &skill, &factors).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    drop(scorer);
    seconds
}

/// A running `aginet-server validator`.
struct Resident(Child);

impl Resident {
    /// Starts one for `project` and waits for its socket.
    fn start(threads: usize, project: &Path) -> Self {
        let child = server(threads)
            .args(["validator", "--project"])
            .arg(project)
            .spawn()
            .unwrap();
        let socket = project.join("state/validator.sock");
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no validator socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
