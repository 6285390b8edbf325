//! Which precision pays for the frozen products on this CPU: one register-blocked microkernel
//! (8 rows × 48 columns of accumulators, operands packed as a GEMM packs them, the panels in
//! L1/L2) written three ways — f32 FMA (`vfmadd231ps`, what `gemm` runs today), bf16 pairs
//! (`vdpbf16ps`, AVX512-BF16) and int8 quads (`vpdpbusd`, AVX512-VNNI, what a Q8_0 × Q8
//! product as llama.cpp's runs) — timed on the same shape, one thread, as multiply-adds per
//! second (×2 = FLOP/s; one bf16 or int8 multiply-add counts as one, as in f32).
//!
//! This measures the arithmetic alone, at its best: no dequantization, no per-block scales, no
//! packing. It says how much a lower-precision product could win at most, before any of it is
//! built. `cargo bench --bench dot_kernels` (x86_64; a kernel the CPU lacks is skipped).

use std::time::Instant;

/// Rows of accumulators.
const MR: usize = 8;
/// 512-bit vectors of accumulators per row (16 f32 lanes each).
const NV: usize = 3;
/// Columns of accumulators.
const NR: usize = 16 * NV;
/// The shape: a batch of 4 × 128 tokens against a 640-wide projection (Gemma 3 270M), 4,032
/// output columns (a slice of the head's vocabulary, or a block's widest projections).
const M: usize = 512;
const N: usize = 84 * NR;
const K: usize = 640;
/// Timed repetitions (the best is reported).
const REPS: usize = 7;

#[cfg(target_arch = "x86_64")]
mod kernels {
    use super::{MR, NR, NV};
    use std::arch::x86_64::*;

    /// `c[MR×NR] += a·b` in f32: `a` packed as [k][MR], `b` as [k][NR].
    ///
    /// # Safety
    /// The CPU has AVX-512F; `a` holds `k·MR` values, `b` `k·NR`, `c` `MR` rows of `ldc`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn f32_fma(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize) {
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        for p in 0..k {
            let bp = b.add(p * NR);
            let bv: [__m512; NV] = std::array::from_fn(|j| _mm512_loadu_ps(bp.add(16 * j)));
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(p * MR + i));
                for (lane, bj) in row.iter_mut().zip(&bv) {
                    *lane = _mm512_fmadd_ps(av, *bj, *lane);
                }
            }
        }
        store(&acc, c, ldc);
    }

    /// The same with bf16 pairs: `a` packed as [k/2][MR] pairs, `b` as [k/2][NR] pairs.
    ///
    /// # Safety
    /// The CPU has AVX512-BF16; `a` holds `k/2·MR` pairs, `b` `k/2·NR`, `c` as above.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn bf16_pairs(k: usize, a: *const u32, b: *const u32, c: *mut f32, ldc: usize) {
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        for p in 0..k / 2 {
            let bp = b.add(p * NR);
            let bv: [__m512bh; NV] = std::array::from_fn(|j| {
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(bp.add(16 * j).cast()))
            });
            for (i, row) in acc.iter_mut().enumerate() {
                let pair = _mm512_set1_epi32(*a.add(p * MR + i) as i32);
                let av = std::mem::transmute::<__m512i, __m512bh>(pair);
                for (lane, bj) in row.iter_mut().zip(&bv) {
                    *lane = _mm512_dpbf16_ps(*lane, av, *bj);
                }
            }
        }
        store(&acc, c, ldc);
    }

    /// The same with int8 quads (unsigned × signed): `a` packed as [k/4][MR] quads, `b` as
    /// [k/4][NR] quads; the i32 sums are converted to f32 at the end.
    ///
    /// # Safety
    /// The CPU has AVX512-VNNI; `a` holds `k/4·MR` quads, `b` `k/4·NR`, `c` as above.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn int8_quads(k: usize, a: *const u32, b: *const u32, c: *mut f32, ldc: usize) {
        let mut acc = [[_mm512_setzero_si512(); NV]; MR];
        for p in 0..k / 4 {
            let bp = b.add(p * NR);
            let bv: [__m512i; NV] =
                std::array::from_fn(|j| _mm512_loadu_si512(bp.add(16 * j).cast()));
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_epi32(*a.add(p * MR + i) as i32);
                for (lane, bj) in row.iter_mut().zip(&bv) {
                    *lane = _mm512_dpbusd_epi32(*lane, av, *bj);
                }
            }
        }
        let acc = acc.map(|row| row.map(|v| _mm512_cvtepi32_ps(v)));
        store(&acc, c, ldc);
    }

    /// `c += acc`.
    #[target_feature(enable = "avx512f")]
    unsafe fn store(acc: &[[__m512; NV]; MR], c: *mut f32, ldc: usize) {
        for (i, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let dst = c.add(i * ldc + 16 * j);
                _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), *v));
            }
        }
    }
}

/// Best multiply-adds per second of `kernel` over the whole shape, with `a` and `b` packed
/// for it (`per` values of K in one packed element).
fn time<T: Copy>(
    per: usize,
    a: &[T],
    b: &[T],
    kernel: unsafe fn(usize, *const T, *const T, *mut f32, usize),
) -> f64 {
    let mut c = vec![0f32; M * N];
    let ka = K / per * MR;
    let kb = K / per * NR;
    let mut best = 0f64;
    for _ in 0..REPS {
        let start = Instant::now();
        for jb in 0..N / NR {
            for ib in 0..M / MR {
                // SAFETY: each panel is within its packed operand, each tile within `c`, and
                // the caller checked the CPU feature the kernel needs.
                unsafe {
                    kernel(
                        K,
                        a.as_ptr().add(ib * ka),
                        b.as_ptr().add(jb * kb),
                        c.as_mut_ptr().add(ib * MR * N + jb * NR),
                        N,
                    )
                };
            }
        }
        best = best.max((M * N * K) as f64 / start.elapsed().as_secs_f64());
    }
    std::hint::black_box(&c);
    best
}

#[cfg(target_arch = "x86_64")]
fn main() {
    let has = |f: &str| match f {
        "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
        "avx512bf16" => std::arch::is_x86_feature_detected!("avx512bf16"),
        "avx512vnni" => std::arch::is_x86_feature_detected!("avx512vnni"),
        _ => false,
    };
    if !has("avx512f") {
        println!("no AVX-512F: nothing to compare");
        return;
    }
    // Small, varied operands (the values do not change the timing).
    let a32: Vec<f32> = (0..M * K).map(|i| (i % 7) as f32 * 0.25).collect();
    let b32: Vec<f32> = (0..N * K).map(|i| (i % 5) as f32 * 0.5).collect();
    let a_pack: Vec<u32> = (0..M * K)
        .map(|i| 0x3e80_3f00 ^ (i as u32 & 0x3f))
        .collect();
    let b_pack: Vec<u32> = (0..N * K)
        .map(|i| 0x3f00_3e80 ^ (i as u32 & 0x3f))
        .collect();
    println!("microkernel {MR}×{NR}, shape {M}×{N}×{K}, one thread, best of {REPS}");
    let f32_rate = time(1, &a32, &b32, kernels::f32_fma);
    println!(
        "f32 FMA (vfmadd231ps):        {:6.1} G multiply-adds/s  1.00×",
        f32_rate / 1e9
    );
    for (name, feature, per, kernel) in [
        (
            "bf16 pairs (vdpbf16ps):     ",
            "avx512bf16",
            2,
            kernels::bf16_pairs as unsafe fn(usize, *const u32, *const u32, *mut f32, usize),
        ),
        (
            "int8 quads (vpdpbusd):      ",
            "avx512vnni",
            4,
            kernels::int8_quads,
        ),
    ] {
        if !has(feature) {
            println!("{name}   skipped: no {feature}");
            continue;
        }
        let rate = time(per, &a_pack, &b_pack, kernel);
        println!(
            "{name}   {:6.1} G multiply-adds/s  {:.2}×",
            rate / 1e9,
            rate / f32_rate
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("x86_64 only");
}
