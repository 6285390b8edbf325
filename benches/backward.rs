//! How to compute `g·W` through a frozen quantized weight: time and peak memory per variant.
//!
//! `cargo bench --bench backward` prints two tables. The first runs forward + backward through
//! a stack of LoRA layers shaped like a small LLM's MLP (768→2048→768, four layers, rank 16;
//! widths are multiples of 256 so that Q4_K can hold them)
//! for each weight format and backward variant; the second runs the tiny work unit end to end
//! per variant. Each case runs in a child process of its own so that its peak RSS (VmHWM) is
//! its own. Options: `--tokens N` (default 128), `--iters N` (default 20).

use aginet::nn::frozen::{BackwardMode, FrozenLinear, FrozenMode};
use aginet::nn::lora::{LoraLinear, LoraPair};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor, Var};
use std::process::Command;
use std::time::Instant;

const LAYERS: [(usize, usize); 4] = [(2048, 768), (768, 2048), (2048, 768), (768, 2048)];
const RANK: usize = 16;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn variant(name: &str) -> Option<(GgmlDType, Option<BackwardMode>)> {
    let (dtype, mode) = name.split_once('/')?;
    let dtype = match dtype {
        "q8_0" => GgmlDType::Q8_0,
        "q4k" => GgmlDType::Q4K,
        _ => return None,
    };
    let mode = match mode {
        "dequantize" => Some(BackwardMode::Dequantize),
        "transposed_q8" => Some(BackwardMode::TransposedQ8),
        "dense_f32" => None,
        _ => return None,
    };
    Some((dtype, mode))
}

/// Child: one layer-stack case; prints `ms_per_iter resident_mib peak_rss_mib`.
fn run_layers(name: &str, tokens: usize, iters: usize) {
    let (dtype, mode) = variant(name).expect("known variant");
    let dev = Device::Cpu;
    let mut layers = Vec::new();
    let mut resident = 0usize;
    for (out, inp) in LAYERS.iter() {
        let w = Tensor::randn(0f32, 0.02, (*out, *inp), &dev).unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        let frozen = match mode {
            Some(backward) => FrozenLinear::quantized(
                q,
                FrozenMode {
                    backward,
                    ..FrozenMode::default()
                },
            )
            .unwrap(),
            None => FrozenLinear::dense(q.dequantize(&dev).unwrap()),
        };
        resident += frozen.resident_bytes();
        let a = Tensor::randn(0f32, 0.02, (RANK, *inp), &dev).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.02, (*out, RANK), &dev).unwrap()).unwrap();
        layers.push((
            LoraLinear::new(
                frozen,
                Some(LoraPair {
                    a,
                    b: b.as_tensor().clone(),
                    scale: 2.0,
                }),
            ),
            b,
        ));
    }
    let x = Tensor::randn(0f32, 1.0, (1, tokens, LAYERS[0].1), &dev).unwrap();
    let step = || {
        let mut h = x.clone();
        for (l, _) in &layers {
            h = l.forward(&h).unwrap();
        }
        let grads = h.sqr().unwrap().mean_all().unwrap().backward().unwrap();
        assert!(layers
            .iter()
            .all(|(_, b)| grads.get(b.as_tensor()).is_some()));
    };
    step();
    let mut times = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        step();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{:.3} {:.2} {:.1}",
        times[times.len() / 2],
        resident as f64 / (1 << 20) as f64,
        peak_rss_mib()
    );
}

/// Child: the tiny work unit end to end; prints `ms_per_step peak_rss_mib`.
fn run_tiny(mode: &str) {
    use aginet::nn::model::tiny::{tiny_model_bytes, TinyQuant};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("model"),
        tiny_model_bytes(0, TinyQuant::Q8_0).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("data"),
        aginet::task::reverse_jsonl(1, 256, 32),
    )
    .unwrap();
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut config = aginet::format::manifest::Manifest::load(&models, "tiny")
        .unwrap()
        .work_config(1, 0);
    config.backward = serde_json::from_value(serde_json::Value::String(mode.into())).unwrap();
    std::fs::write(dir.path().join("config"), config.to_json()).unwrap();
    struct Quiet(Vec<f64>);
    impl aginet::learn::train::Host for Quiet {
        fn poll(&mut self) -> aginet::learn::train::Control {
            aginet::learn::train::Control::Continue
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
    let mut host = Quiet(Vec::new());
    let files = aginet::app::workunit::WorkFiles::in_dir(dir.path());
    aginet::app::workunit::run(&files, aginet::nn::threads::available(), &mut host).unwrap();
    let mean = host.0.iter().sum::<f64>() / host.0.len() as f64;
    println!("{mean:.2} {:.1}", peak_rss_mib());
}

fn child(args: &[&str]) -> Vec<f64> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (tokens, iters) = (flag("--tokens", 128), flag("--iters", 20));
    match args.first().map(String::as_str) {
        Some("--child-layers") => return run_layers(&args[1], tokens, iters),
        Some("--child-tiny") => return run_tiny(&args[1]),
        _ => {}
    }
    println!("forward+backward, 4 LoRA layers 768->2048->768->2048->768, rank 16, {tokens} tokens, median of {iters}");
    println!(
        "{:<24} {:>10} {:>14} {:>14}",
        "weights/backward", "ms/iter", "resident MiB", "peak RSS MiB"
    );
    for name in [
        "q8_0/dense_f32",
        "q8_0/dequantize",
        "q8_0/transposed_q8",
        "q4k/dense_f32",
        "q4k/dequantize",
        "q4k/transposed_q8",
    ] {
        let t = tokens.to_string();
        let i = iters.to_string();
        let r = child(&["--child-layers", name, "--tokens", &t, "--iters", &i]);
        println!("{name:<24} {:>10.2} {:>14.2} {:>14.1}", r[0], r[1], r[2]);
    }
    println!();
    println!("tiny work unit (Q8_0, 50 steps, batch 8), mean step time");
    println!(
        "{:<24} {:>10} {:>14}",
        "backward", "ms/step", "peak RSS MiB"
    );
    for mode in ["dequantize", "transposed_q8"] {
        let r = child(&["--child-tiny", mode]);
        println!("{mode:<24} {:>10.2} {:>14.1}", r[0], r[1]);
    }
}
