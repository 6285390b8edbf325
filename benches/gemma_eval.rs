//! Forward-only (evaluation) throughput of the Gemma 3 270M decoder at a batch of 4 × 128
//! tokens on this machine's threads: tokens per second and peak RSS, for the base as shipped
//! and for any other GGUF given (e.g. the `convert-base` output).
//!
//! `models/gemma3-270m/fetch.sh && cargo bench --bench gemma_eval [-- OTHER.gguf ...]`

use aginet::format::adapter::LoraSpec;
use aginet::format::gguf::Gguf;
use aginet::nn::frozen::FrozenMode;
use aginet::nn::model::gemma3::{Gemma3, Gemma3Options};
use aginet::nn::model::WeightMode;
use candle_core::{Device, Tensor};
use std::path::PathBuf;
use std::time::Instant;

const BATCH: usize = 4;
const SEQ: usize = 128;
const REPEATS: usize = 3;

fn main() {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models/gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    assert!(shipped.exists(), "run models/gemma3-270m/fetch.sh first");
    let mut paths = vec![shipped];
    paths.extend(
        std::env::args()
            .skip(1)
            .filter(|a| a.ends_with(".gguf"))
            .map(PathBuf::from),
    );
    let no_adapter = LoraSpec::none();
    let factors = Default::default();
    println!("| base | eval tok/s | ms per batch of {BATCH}×{SEQ} |\n|---|---|---|");
    for path in paths {
        let mut g = Gguf::open(&path).unwrap();
        let model = Gemma3::from_gguf(
            &mut g,
            &Gemma3Options {
                expected: None,
                weights: WeightMode::Quantized(FrozenMode::default()),
                lora: &no_adapter,
                factors: &factors,
                max_seq_len: SEQ,
                device: &Device::Cpu,
            },
        )
        .unwrap();
        let ids: Vec<u32> = (0..BATCH * SEQ)
            .map(|i| (i * 7919 % 200_000) as u32 + 300)
            .collect();
        let tokens = Tensor::from_vec(ids, (BATCH, SEQ), &Device::Cpu).unwrap();
        model.forward(&tokens).unwrap();
        let started = Instant::now();
        for _ in 0..REPEATS {
            std::hint::black_box(model.forward(&tokens).unwrap());
        }
        let secs = started.elapsed().as_secs_f64() / REPEATS as f64;
        println!(
            "| {} | {:.0} | {:.0} |",
            path.file_name().unwrap().to_string_lossy(),
            (BATCH * SEQ) as f64 / secs,
            secs * 1e3
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM")) {
        println!("\npeak RSS of this process (both models loaded in turn): {hwm}");
    }
}
