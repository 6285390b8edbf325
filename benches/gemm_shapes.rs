//! candle's f32 matmul at the shapes a Gemma 3 270M training step multiplies, on 2 threads:
//! a batch of 4 × 128 rows by 640 against the block projections (256 to 4096 outputs, the last
//! two as if q/k/v or gate/up were fused), forward (`x · Wᵀ`) and input gradient (`g · W`), and a
//! slice of 8,192 rows of the head. It answers whether fusing projections would pay
//! (`docs/backward.md`).
//!
//! `cargo bench --bench gemm_shapes`

use candle_core::{Device, Tensor};
use std::time::Instant;

const ROWS: usize = 512;
const WIDTH: usize = 640;
const REPEATS: usize = 20;

/// GFLOP/s of `f`, a product of `flop` multiply-adds ×2, after one warm-up call.
fn rate(flop: f64, f: impl Fn() -> Tensor) -> f64 {
    std::hint::black_box(f());
    let started = Instant::now();
    for _ in 0..REPEATS {
        std::hint::black_box(f());
    }
    flop / (started.elapsed().as_secs_f64() / REPEATS as f64) / 1e9
}

fn main() {
    aginet::nn::threads::configure(2);
    aginet::nn::allocator::tune();
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (ROWS, WIDTH), &dev).unwrap();
    println!("| outputs | forward GFLOP/s | input gradient GFLOP/s |");
    println!("|---|---|---|");
    for n in [256usize, 1024, 1536, 2048, 4096, 8192] {
        let w = Tensor::randn(0f32, 1.0, (n, WIDTH), &dev).unwrap();
        let g = Tensor::randn(0f32, 1.0, (ROWS, n), &dev).unwrap();
        let flop = 2.0 * (ROWS * WIDTH * n) as f64;
        let forward = rate(flop, || x.matmul(&w.t().unwrap()).unwrap());
        let backward = rate(flop, || g.matmul(&w).unwrap());
        println!("| {n} | {forward:.1} | {backward:.1} |");
    }
}
