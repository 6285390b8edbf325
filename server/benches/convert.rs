//! Why `convert-base` exists: the time of candle's quantized matmul through Gemma 3 270M's
//! Q5_0 projections as shipped and after their exact conversion to Q8_0, at a training batch of
//! 4 × 128 tokens, on this machine's threads.
//!
//! `models/gemma3-270m/fetch.sh && cargo bench -p aginet-server --bench convert`

use candle_core::quantized::{gguf_file, QMatMul};
use candle_core::{Device, Module, Tensor};
use std::path::Path;
use std::time::Instant;

const TOKENS: usize = 512;
const REPEATS: usize = 10;

fn main() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    assert!(base.exists(), "run models/gemma3-270m/fetch.sh first");
    let dir = tempfile::tempdir().unwrap();
    let converted = dir.path().join("q8.gguf");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_aginet-server"))
        .args(["convert-base", "--in"])
        .arg(&base)
        .arg("--out")
        .arg(&converted)
        .output()
        .unwrap();
    assert!(run.status.success());
    println!("| tensor | shape | as shipped | ms | converted | ms | speed-up |\n|---|---|---|---|---|---|---|");
    let mut totals = (0.0, 0.0);
    for name in [
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.0.ffn_gate.weight",
        "blk.0.ffn_up.weight",
    ] {
        let (shipped, t_shipped) = time(&base, name);
        let (conv, t_conv) = time(&converted, name);
        totals.0 += t_shipped;
        totals.1 += t_conv;
        println!(
            "| {name} | {shipped} | {t_shipped:.1} | {conv} | {t_conv:.1} | {:.1}× |",
            t_shipped / t_conv
        );
    }
    println!(
        "\nper block, these four projections: {:.1} ms as shipped, {:.1} ms converted ({:.1}×)",
        totals.0,
        totals.1,
        totals.0 / totals.1
    );
}

/// The tensor's type and shape, and the mean milliseconds of one forward of `TOKENS` rows.
fn time(path: &Path, name: &str) -> (String, f64) {
    let mut f = std::fs::File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut f).unwrap();
    let q = content.tensor(&mut f, name, &Device::Cpu).unwrap();
    let label = format!("{:?} {:?}", q.dtype(), q.shape().dims());
    let (_, inp) = q.shape().dims2().unwrap();
    let mm = QMatMul::from_qtensor(q).unwrap();
    let x = Tensor::ones((TOKENS, inp), candle_core::DType::F32, &Device::Cpu).unwrap();
    mm.forward(&x).unwrap();
    let started = Instant::now();
    for _ in 0..REPEATS {
        std::hint::black_box(mm.forward(&x).unwrap());
    }
    (
        label,
        started.elapsed().as_secs_f64() * 1e3 / REPEATS as f64,
    )
}
