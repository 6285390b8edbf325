//! The frozen forward product `x·Wᵀ` of Gemma 3 270M's shapes (a batch of 4 × 128 tokens),
//! as the training step runs it today (`FrozenLinear`: W dequantized a slice at a time, f32
//! GEMM) against the int8 product (`aginet::nn::q8_product`: x rounded to 8 bits per block,
//! VNNI), on rayon's pool (every core), median of several runs each.
//!
//! `cargo bench --bench q8_product [-- --tokens 512 --reps 9]`; `AGINET_INT8_KERNEL=avx2` times
//! the AVX2 kernel on a VNNI machine (the same bits, the speed of a CPU without VNNI).

use aginet::nn::frozen::{FrozenLinear, FrozenMode};
use aginet::nn::q8_product::{product, PackedWeight, QuantizedRows};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::time::Instant;

/// (name, rows of W, row length): the projections of one Gemma 3 270M block and a slice of the
/// head's vocabulary.
const SHAPES: [(&str, usize, usize); 6] = [
    ("attn_q", 1024, 640),
    ("attn_k/v", 256, 640),
    ("attn_output", 640, 1024),
    ("ffn_gate/up", 2048, 640),
    ("ffn_down", 640, 2048),
    ("head slice", 16384, 640),
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let tokens = arg("--tokens", 512);
    let reps = arg("--reps", 9);
    let dev = Device::Cpu;
    println!(
        "x·Wᵀ for {tokens} tokens, {} threads, median of {reps}",
        rayon::current_num_threads()
    );
    println!(
        "{:<12} {:>12} {:>12} {:>10} {:>12} {:>14}",
        "weight", "f32 ms", "int8 ms", "speedup", "int8 GMAC/s", "max rel. diff"
    );
    for (name, n, k) in SHAPES {
        let w = Tensor::randn(0f32, 0.02, (n, k), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let packed = PackedWeight::from_q8_0(&q.data().unwrap(), n, k).unwrap();
        let frozen = FrozenLinear::quantized(q, FrozenMode::default()).unwrap();
        let x = Tensor::randn(0f32, 1.0, (tokens, k), &dev).unwrap();
        let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();

        let mut reference = Vec::new();
        let f32_ms = median(
            (0..reps)
                .map(|_| {
                    let start = Instant::now();
                    let y = frozen.forward(&x).unwrap();
                    let ms = start.elapsed().as_secs_f64() * 1e3;
                    reference = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    ms
                })
                .collect(),
        );
        let mut ours = Vec::new();
        let int8_ms = median(
            (0..reps)
                .map(|_| {
                    let start = Instant::now();
                    ours = product(&QuantizedRows::new(&xs, tokens, k), &packed);
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        );
        if name == "head slice" {
            // The head's gradient product P·W for one slice: Wᵀ packed from the Q8_0 rows,
            // P rounded, the product; one thread, as the head's parts run.
            let bytes = QTensor::quantize(&w, GgmlDType::Q8_0)
                .unwrap()
                .data()
                .unwrap()
                .to_vec();
            let p: Vec<f32> = (0..tokens * n).map(|i| (i % 977) as f32 / 977.0).collect();
            let mut t = PackedWeight::empty();
            let pack_ms = median(
                (0..reps)
                    .map(|_| {
                        let start = Instant::now();
                        t.pack_q8_0_transposed(&bytes, n, k).unwrap();
                        start.elapsed().as_secs_f64() * 1e3
                    })
                    .collect(),
            );
            let mut out = vec![0f32; tokens * k];
            let round_ms = median(
                (0..reps)
                    .map(|_| {
                        let start = Instant::now();
                        std::hint::black_box(QuantizedRows::new_on_this_thread(&p, tokens, n));
                        start.elapsed().as_secs_f64() * 1e3
                    })
                    .collect(),
            );
            let pr = QuantizedRows::new_on_this_thread(&p, tokens, n);
            let product_ms = median(
                (0..reps)
                    .map(|_| {
                        let start = Instant::now();
                        aginet::nn::q8_product::product_into(&pr, &t, &mut out);
                        start.elapsed().as_secs_f64() * 1e3
                    })
                    .collect(),
            );
            println!(
                "head P·W, one thread: pack Wᵀ {pack_ms:.2} ms, round P {round_ms:.2} ms, product {product_ms:.2} ms"
            );
        }
        let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs()));
        let diff = reference
            .iter()
            .zip(&ours)
            .fold(0f32, |a, (r, o)| a.max((r - o).abs()))
            / scale;
        println!(
            "{name:<12} {f32_ms:>12.3} {int8_ms:>12.3} {:>9.2}× {:>12.1} {diff:>14.2e}",
            f32_ms / int8_ms,
            (tokens * n * k) as f64 / int8_ms / 1e6
        );
    }
}
