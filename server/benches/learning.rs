//! Learning quality: the local federation's final held-out reward against centralized
//! fine-tuning on the union of the same shards for the same number of optimizer steps in total
//! (the mean over several orders of that union, since one run's result depends on it), both
//! averaged over several draws of the shards (`demo --shard-seed`),
//! per server strategy, with every volunteer honest and with 20% of them hostile (one of five
//! poisons every result: scaled, sign-flipped or with a forged hash, round by round; as under
//! BOINC, its rejected work units are issued again to the honest volunteers).
//!
//! `cargo build --release --workspace && cargo bench -p aginet-server --bench learning
//! [-- --skill SKILL --rounds R --steps S --volunteers V --strategies fedavg,fedadam,fedavg+buf1 --seeds 0,1,2 --orders 5
//! --clean-only --models DIR]`
//! (the federation runs the release `aginet` app beside `aginet-server`; the defaults are the
//! short budget, 5 × 8 × 15, every strategy, three draws, five orders).

mod common;

use clap::Parser;
use common::{app, run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The budget and what is compared.
#[derive(Parser, Debug)]
struct Options {
    /// The skill to train (`tiny`, `vision`, `memory`, `language`, `planner`).
    #[arg(long, default_value = "tiny")]
    skill: String,
    /// Volunteers per round.
    #[arg(long, default_value_t = 5)]
    volunteers: usize,
    /// Rounds of the federation.
    #[arg(long, default_value_t = 8)]
    rounds: usize,
    /// Optimizer steps per work unit.
    #[arg(long, default_value_t = 15)]
    steps: u32,
    /// Server strategies to run; `STRATEGY+lrX` sets the server learning rate, `STRATEGY+bufK`
    /// aggregates as results arrive, once K are queued (FedBuff, `demo --buffer K`), and a
    /// last `+staleN` sets the staleness bound (`demo --max-staleness N`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fedavg,fedavgm,fedadam,fedyogi,diloco"
    )]
    strategies: Vec<String>,
    /// Draws of the work units' shards (`demo --shard-seed`) every figure is averaged over.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// Orders of the union each draw's centralized run is repeated with.
    #[arg(long, default_value_t = 5)]
    orders: u64,
    /// Folder holding the skill manifests (default: the repository's `models`); a copy with
    /// other `[defaults.hyper]` compares other client settings.
    #[arg(long)]
    models: Option<PathBuf>,
    /// Skip the runs with a hostile volunteer (long budgets: they double the time).
    #[arg(long)]
    clean_only: bool,
    /// Ignored: cargo passes it to every bench target.
    #[arg(long, hide = true)]
    bench: bool,
}

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aginet-server"))
}

/// The two numbers of a line `prefix A -> B…`.
fn before_after(text: &str, prefix: &str) -> (f64, f64) {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in {text}"));
    let mut numbers = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<f64>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

/// A federation of `o.rounds` rounds: the held-out reward at version 0 and at the end.
fn federate(
    o: &Options,
    project: &Path,
    models: &Path,
    strategy: &str,
    hostile: usize,
    shard_seed: u64,
) -> (f64, f64) {
    // `STRATEGY+lrX`: server learning rate X (`demo --server-lr`); `STRATEGY+bufK`: buffered
    // asynchronous aggregation with a buffer of K (`demo --buffer`); `+staleN` last: the
    // staleness bound N (`demo --max-staleness`).
    let (strategy, stale) = match strategy.split_once("+stale") {
        Some((s, n)) => (s, Some(n)),
        None => (strategy, None),
    };
    let (strategy, buffer) = strategy.split_once("+buf").unwrap_or((strategy, "0"));
    let (strategy, server_lr) = match strategy.split_once("+lr") {
        Some((s, lr)) => (s, Some(lr)),
        None => (strategy, None),
    };
    let mut demo = server();
    demo.arg("demo");
    if let Some(lr) = server_lr {
        demo.args(["--server-lr", lr]);
    }
    if let Some(n) = stale {
        demo.args(["--max-staleness", n]);
    }
    let out = run(demo
        .args(["--volunteers", &o.volunteers.to_string()])
        .args(["--rounds", &o.rounds.to_string()])
        .args(["--steps", &o.steps.to_string()])
        .args(["--skill", &o.skill])
        .args(["--strategy", strategy, "--hostile", &hostile.to_string()])
        .args(["--buffer", buffer])
        .args(["--shard-seed", &shard_seed.to_string()])
        .arg("--project")
        .arg(project)
        .arg("--models")
        .arg(models)
        .arg("--app")
        .arg(app()));
    before_after(&out, "global held-out reward: ")
}

/// The lines of every work unit's `data` under `work` with the given split.
fn shard_lines(work: &Path, split: &str) -> Vec<String> {
    let mut files = Vec::new();
    for round in std::fs::read_dir(work).unwrap() {
        for wu in std::fs::read_dir(round.unwrap().path()).unwrap() {
            let data = wu.unwrap().path().join("data");
            if data.exists() {
                files.push(data);
            }
        }
    }
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["split"] == split {
                lines.push(line.to_string());
            }
        }
    }
    lines
}

/// One run of the app on the union of the federation's training shards (in the order given by
/// `order`: 0 as the shards list them, else a seeded shuffle; one run's final reward depends on
/// the order of its training lines alone by a factor of two, 0.19 to 0.41 seen, so the
/// federation is compared with the mean over several orders), for `steps` steps: the held-out
/// reward before and after, as the validator computes it. The validator's bound on a delta's
/// norm is lifted: one run's delta holds all the federation's rounds.
fn centralized(
    o: &Options,
    root: &Path,
    models: &Path,
    union: &[String],
    order: u64,
    tag: &str,
) -> (f64, f64) {
    let steps = o.steps * (o.volunteers * o.rounds) as u32;
    let mut union = union.to_vec();
    if order > 0 {
        use rand::seq::SliceRandom;
        union.shuffle(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(order));
    }
    let project = root.join(format!("central-{tag}-{order}"));
    let p = project.to_str().unwrap();
    run(server()
        .args(["init", "--project", p, "--skill", &o.skill, "--models"])
        .arg(models));
    let out = root.join(format!("central-{tag}-{order}-wu"));
    let made = run(server()
        .args(["make-work", "--project", p, "--count", "1", "--out"])
        .arg(&out));
    let wu = PathBuf::from(made.trim());
    let own: String = std::fs::read_to_string(wu.join("data")).unwrap();
    let eval: Vec<&str> = own.lines().filter(|l| l.contains("\"eval\"")).collect();
    let data = union
        .iter()
        .map(String::as_str)
        .chain(eval)
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(wu.join("data"), format!("{data}\n")).unwrap();
    let mut config = aginet::format::config::WorkConfig::read(&wu.join("config")).unwrap();
    config.steps = steps;
    std::fs::write(wu.join("config"), config.to_json()).unwrap();
    let settings = project.join("project.toml");
    let mut toml: toml::Table = std::fs::read_to_string(&settings).unwrap().parse().unwrap();
    toml["validate"]["max_delta_norm"] = toml::Value::Float(f64::MAX);
    std::fs::write(&settings, toml.to_string()).unwrap();
    run(Command::new(app())
        .args(["run", "--threads", "2", "--dir"])
        .arg(&wu));
    let verdict = run(server()
        .args(["validate", "--project", p])
        .arg(wu.join("delta"))
        .arg(wu.join("report")));
    before_after(&verdict, "valid: held-out reward ")
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn main() {
    let o = Options::parse();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let models = (o.models.clone())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    // rewards[strategy][hostile] over the shard seeds; centrals over seeds × orders.
    let mut rewards = vec![[Vec::new(), Vec::new()]; o.strategies.len()];
    let mut centrals = Vec::new();
    let mut start = 0.0;
    let steps = o.steps * (o.volunteers * o.rounds) as u32;
    for &seed in &o.seeds {
        for (s, strategy) in o.strategies.iter().enumerate() {
            let hostile_counts: &[usize] = if o.clean_only { &[0] } else { &[0, 1] };
            for &hostile in hostile_counts {
                let started = Instant::now();
                let project = root.join(format!("{strategy}-{hostile}-seed{seed}"));
                let (_, reward) = federate(&o, &project, &models, strategy, hostile, seed);
                eprintln!(
                    "shard seed {seed}, {strategy}, {hostile} hostile: {reward:.6} in {:.0?}",
                    started.elapsed()
                );
                rewards[s][hostile].push(reward);
            }
        }
        let first = &o.strategies[0];
        let work = root.join(format!("{first}-0-seed{seed}")).join("work");
        let union = shard_lines(&work, "train");
        for order in 0..o.orders {
            let started = Instant::now();
            let tag = format!("seed{seed}");
            let (before, central) = centralized(&o, root, &models, &union, order, &tag);
            eprintln!(
                "shard seed {seed}, centralized, order {order}: {} examples, {steps} steps: \
                 {central:.6} in {:.0?}",
                union.len(),
                started.elapsed()
            );
            start = before;
            centrals.push(central);
        }
    }
    let central = mean(&centrals);
    let (low, high) = centrals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &c| {
            (l.min(c), h.max(c))
        });
    println!(
        "\n{}: {} volunteers × {} rounds × {} steps, {} draws of the shards; held-out reward at \
         version 0 {start:.6}; centralized ({steps} steps on the union of the {} shards, {} \
         orders of it per draw) mean {central:.6}, from {low:.6} to {high:.6}\n",
        o.skill,
        o.volunteers,
        o.rounds,
        o.steps,
        o.seeds.len(),
        o.volunteers * o.rounds,
        o.orders
    );
    println!(
        "| strategy | clean (mean; per draw) | % of the centralized mean | 1 of {} hostile (mean) | cost of the hostile |",
        o.volunteers
    );
    println!("|---|---|---|---|---|");
    for (strategy, [clean, hostile]) in o.strategies.iter().zip(rewards) {
        let per_draw: Vec<String> = clean.iter().map(|r| format!("{r:.4}")).collect();
        let c = mean(&clean);
        let (h, cost) = if hostile.is_empty() {
            ("not run".to_string(), "not run".to_string())
        } else {
            let h = mean(&hostile);
            (format!("{h:.6}"), format!("{:+.1}%", 100.0 * (c - h) / c))
        };
        println!(
            "| {strategy} | {c:.6} ({}) | {:.1}% | {h} | {cost} |",
            per_draw.join(", "),
            100.0 * c / central,
        );
    }
}
