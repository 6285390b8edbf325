//! LoRA training and evaluation throughput of the language skill (Gemma 3 270M) on the CPU,
//! agiNet against PyTorch + PEFT on the same GGUF, in one run: batch 4 × 128 tokens, rank 8 on
//! every linear layer of the blocks (A and B trained, as PEFT does), AdamW, loss on every
//! position, 2 threads. Each side runs in its own child process, so each peak RSS is its own.
//!
//! `bench/gemma/run.sh` sets up the PyTorch venv and the base and runs this; by hand:
//! `cargo bench --bench gemma_train -- BASE.gguf [--torch VENV_PYTHON] [--reps N]`.
//! `cargo bench --bench gemma_train -- --write-workunit BASE.gguf DIR [STEPS]` writes the
//! training work unit alone (`scripts/gpu_check.sh` runs it on a GPU).
//! `AGINET_BENCH_PRODUCTS=f32` or `int8` overrides the manifest's frozen products.

use aginet::format::adapter::{Adapter, AdapterHeader};
use aginet::format::gguf::Gguf;
use aginet::format::manifest::Manifest;
use aginet::learn::train::{Control, Host};
use aginet::nn::model::{self, ModelOptions, WeightMode};
use aginet::text::data::{Dataset, Sequence};
use candle_core::Device;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BATCH: usize = 4;
/// Input positions per sequence (the sequence holds one more token, the last target).
const SEQ: usize = 128;
const THREADS: usize = 2;
/// Training steps timed after the first, which warms up.
const STEPS: u32 = 4;
/// Repetitions of the whole comparison (`--reps N` overrides): the machine's speed drifts
/// by ±15% between runs here, so one pair of runs is not enough.
const REPS: usize = 3;
/// Evaluation passes timed after a warm-up pass.
const EVAL_REPEATS: usize = 3;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Text of exactly `SEQ - 1` tokens (BOS and EOS complete the sequence), different per `row`.
fn text_of(tok: &dyn aginet::text::tokenizer::Tokenizer, row: usize) -> String {
    let words = aginet::task::spell::pairs(row as u64, 200, &Default::default());
    let mut text = String::new();
    for w in words
        .iter()
        .map(|p| format!("{}{} ", p.prompt, p.completion))
    {
        for piece in w.split_inclusive(' ') {
            let longer = format!("{text}{piece}");
            if tok.encode(&longer).len() > SEQ - 1 {
                // Fill the last few tokens one character at a time.
                for c in "0123456789".chars().cycle().take(64) {
                    let t = format!("{text}{c}");
                    if tok.encode(&t).len() < SEQ {
                        text = t;
                    }
                    if tok.encode(&text).len() == SEQ - 1 {
                        return text;
                    }
                }
                return text;
            }
            text = longer;
        }
    }
    text
}

/// The bench's JSONL: `BATCH` training rows of `SEQ` positions, all of them completion (the
/// loss counts every position, as a causal-LM loss on the whole text does), and one eval row.
fn data(base: &Path) -> String {
    let g = Gguf::open(base).unwrap();
    let tok = aginet::text::from_gguf(&g).unwrap();
    (0..=BATCH)
        .map(|row| {
            let split = if row == BATCH { "eval" } else { "train" };
            serde_json::json!({"prompt": "", "completion": text_of(tok.as_ref(), row), "split": split})
                .to_string()
                + "\n"
        })
        .collect()
}

fn manifest() -> Manifest {
    let mut m = Manifest::load(&models(), "language").unwrap();
    m.lora.train_a = true;
    m.defaults.hyper.batch_size = BATCH;
    m.defaults.hyper.max_seq_len = SEQ + 1;
    if let Ok(products) = std::env::var("AGINET_BENCH_PRODUCTS") {
        m.defaults.products = serde_json::from_value(serde_json::Value::String(products))
            .expect("AGINET_BENCH_PRODUCTS is f32 or int8");
    }
    m
}

/// Writes the benchmark's training work unit (`model` a symlink to `base`, `data`, `config`
/// of `steps` steps) into `dir`: what the training child runs, and what `scripts/gpu_check.sh`
/// runs with `aginet run --device cuda`.
fn write_workunit(base: &Path, dir: &Path, steps: u32) {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::symlink(std::fs::canonicalize(base).unwrap(), dir.join("model")).unwrap();
    std::fs::write(dir.join("data"), data(base)).unwrap();
    let mut config = manifest().work_config(1, 0);
    config.base_sha256 = aginet::format::files::sha256_file(base).unwrap();
    config.steps = steps;
    std::fs::write(dir.join("config"), config.to_json()).unwrap();
}

/// Child: training steps of the real app on a work unit; prints `tok_per_s peak_rss_mib`.
fn child_train(base: &Path) {
    aginet::nn::allocator::restart_with_huge_pages();
    aginet::nn::threads::configure(THREADS);
    aginet::nn::allocator::tune();
    let dir = tempfile::tempdir().unwrap();
    write_workunit(base, dir.path(), STEPS + 1);

    struct Steps(Vec<f64>);
    impl Host for Steps {
        fn poll(&mut self) -> Control {
            Control::Continue
        }
        fn time_to_checkpoint(&mut self, _: u32) -> bool {
            false
        }
        fn log(&mut self, line: &str) {
            if let Some(ms) = line.rsplit_once(" ms ").and_then(|(_, v)| v.parse().ok()) {
                self.0.push(ms);
            }
        }
    }
    let mut host = Steps(Vec::new());
    let files = aginet::app::workunit::WorkFiles::in_dir(dir.path());
    aginet::app::workunit::run(&files, THREADS, &mut host).unwrap();
    let timed = &host.0[1..];
    let ms = timed.iter().sum::<f64>() / timed.len() as f64;
    println!(
        "{:.2} {:.0}",
        (BATCH * SEQ) as f64 / (ms / 1e3),
        peak_rss_mib()
    );
}

/// Child: evaluation (forward and loss, no gradients) of the adapted model; prints
/// `tok_per_s peak_rss_mib`.
fn child_eval(base: &Path) {
    aginet::nn::allocator::restart_with_huge_pages();
    aginet::nn::threads::configure(THREADS);
    aginet::nn::allocator::tune();
    let m = manifest();
    let mut g = Gguf::open(base).unwrap();
    let tok = aginet::text::from_gguf(&g).unwrap();
    let sites = m.architecture.sites(&m.lora.targets).unwrap();
    let header = AdapterHeader::new(&m.name, &m.base.sha256, 0, &m.lora);
    let adapter = Adapter::initial(header, &sites, 1).unwrap();
    let device = Device::Cpu;
    let decoder = model::load(
        &m.architecture,
        &mut g,
        &ModelOptions {
            weights: WeightMode::Quantized(aginet::nn::frozen::FrozenMode {
                backward: m.defaults.backward,
                products: m.defaults.products,
            }),
            lora: &m.lora,
            factors: &adapter.tensors,
            max_seq_len: SEQ + 1,
            device: &device,
        },
    )
    .unwrap();
    let set = Dataset::parse(data(base).as_bytes(), tok.as_ref(), SEQ + 1).unwrap();
    let seqs: Vec<Sequence> = set.train;
    let run = || {
        aginet::learn::eval::mean_nll(decoder.as_ref(), &seqs, BATCH, tok.pad(), &device).unwrap()
    };
    run();
    let started = Instant::now();
    for _ in 0..EVAL_REPEATS {
        std::hint::black_box(run());
    }
    let secs = started.elapsed().as_secs_f64() / EVAL_REPEATS as f64;
    println!("{:.2} {:.0}", (BATCH * SEQ) as f64 / secs, peak_rss_mib());
}

/// One side's figures in one repetition: (tok/s, peak RSS MiB) of training and of evaluation.
#[derive(Debug, Default, Clone, Copy)]
struct Rep {
    train: Option<(f64, f64)>,
    eval: Option<(f64, f64)>,
}

impl Rep {
    fn set(&mut self, mode: &str, m: Option<(f64, f64)>) {
        match mode {
            "train" => self.train = m,
            _ => self.eval = m,
        }
    }
}

/// `median [min–max]` of `xs` with `digits` decimals; the median alone for one value.
fn spread(xs: &[f64], digits: usize) -> String {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return "-".into();
    }
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let (lo, hi) = (v[0], v[v.len() - 1]);
    if v.len() == 1 {
        format!("{median:.digits$}")
    } else {
        format!("{median:.digits$} [{lo:.digits$}–{hi:.digits$}]")
    }
}

/// Runs a child command; its two printed numbers.
fn measure(cmd: &mut Command) -> (f64, f64) {
    let out = cmd.output().expect("the child starts");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{cmd:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nums: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(nums.len(), 2, "{cmd:?} printed {text}");
    (nums[0], nums[1])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child-train") => return child_train(Path::new(&args[1])),
        Some("--child-eval") => return child_eval(Path::new(&args[1])),
        Some("--write-workunit") => {
            let steps = args.get(3).map_or(STEPS + 1, |n| n.parse().expect("STEPS"));
            return write_workunit(Path::new(&args[1]), Path::new(&args[2]), steps);
        }
        _ => {}
    }
    let base = args
        .iter()
        .find(|a| a.ends_with(".gguf"))
        .map(PathBuf::from)
        .unwrap_or_else(|| models().join("language/gemma3-270m-q8.gguf"));
    assert!(
        base.exists(),
        "{} is missing: bench/gemma/run.sh makes it",
        base.display()
    );
    let torch = args
        .iter()
        .position(|a| a == "--torch")
        .map(|i| PathBuf::from(&args[i + 1]));
    let reps: usize = args
        .iter()
        .position(|a| a == "--reps")
        .map(|i| args[i + 1].parse().expect("--reps N"))
        .unwrap_or(REPS);
    let me = std::env::current_exe().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/gemma/peft_bench.py");
    let ours = |mode: &str| measure(Command::new(&me).arg(format!("--child-{mode}")).arg(&base));
    let theirs = |mode: &str| {
        torch.as_ref().map(|python| {
            measure(
                Command::new(python)
                    .arg(&script)
                    .args(["--mode", mode, "--threads", &THREADS.to_string()])
                    .args(["--batch", &BATCH.to_string(), "--seq", &SEQ.to_string()])
                    .args(["--steps", &STEPS.to_string(), "--gguf"])
                    .arg(&base)
                    .env("CUDA_VISIBLE_DEVICES", ""),
            )
        })
    };
    // Each repetition measures both sides back to back, in alternating order, so a slow spell
    // of the machine lands on both; the ratio is taken per repetition.
    let mut runs: Vec<[Rep; 2]> = Vec::new();
    for rep in 0..reps {
        let mut pair = [Rep::default(), Rep::default()];
        for mode in ["train", "eval"] {
            let (a, b) = if rep % 2 == 0 {
                let a = ours(mode);
                (a, theirs(mode))
            } else {
                let b = theirs(mode);
                (ours(mode), b)
            };
            pair[0].set(mode, Some(a));
            pair[1].set(mode, b);
        }
        eprintln!("repetition {}/{reps}: {pair:?}", rep + 1);
        runs.push(pair);
    }
    println!(
        "\nGemma 3 270M ({}), batch {BATCH}×{SEQ}, LoRA rank 8 on every block projection, {THREADS} threads, {reps} repetitions (median; range in brackets)\n",
        base.display()
    );
    println!("| | train tok/s | train peak RSS MiB | eval tok/s | eval peak RSS MiB |");
    println!("|---|---|---|---|---|");
    let side = |i: usize, f: fn(&Rep) -> Option<f64>| -> Vec<f64> {
        runs.iter().filter_map(|p| f(&p[i])).collect()
    };
    for (i, name) in [(0, "agiNet"), (1, "PyTorch + PEFT")] {
        if side(i, |r| r.train.map(|m| m.0)).is_empty() {
            println!(
                "\n(PyTorch + PEFT not run: pass --torch VENV_PYTHON, as bench/gemma/run.sh does)"
            );
            return;
        }
        println!(
            "| {name} | {} | {} | {} | {} |",
            spread(&side(i, |r| r.train.map(|m| m.0)), 1),
            spread(&side(i, |r| r.train.map(|m| m.1)), 0),
            spread(&side(i, |r| r.eval.map(|m| m.0)), 1),
            spread(&side(i, |r| r.eval.map(|m| m.1)), 0),
        );
    }
    let ratio = |f: fn(&Rep) -> Option<f64>| -> String {
        let r: Vec<f64> = runs
            .iter()
            .filter_map(|p| Some(f(&p[0])? / f(&p[1])?))
            .collect();
        format!("{}×", spread(&r, 2))
    };
    println!(
        "| ratio (agiNet / PyTorch, per repetition) | {} | {} | {} | {} |",
        ratio(|r| r.train.map(|m| m.0)),
        ratio(|r| r.train.map(|m| m.1)),
        ratio(|r| r.eval.map(|m| m.0)),
        ratio(|r| r.eval.map(|m| m.1)),
    );
    println!("\ntargets: train ≥ 2×, train RSS ≤ 0.4×, eval ≥ 1.5×");
}
