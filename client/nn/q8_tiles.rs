//! The int8 product's tile kernels: `MR` rows of rounded activations by `NR` rows of a packed
//! weight, per block the exact integer sums, then scaled into f32 sums. Three kernels (VNNI,
//! AVX2, portable) compute the same sums and scale them in the same order: the same bits.

#[cfg(target_arch = "x86_64")]
use crate::nn::q8_pack::NV;
use crate::nn::q8_pack::{MR, NR, QUADS};

/// One row panel of the rounded activations.
pub(crate) struct Operand<'a> {
    pub(crate) quads: &'a [u32],
    pub(crate) scales: &'a [f32],
}

/// One panel of the packed weight.
pub(crate) struct WeightPanel<'a> {
    pub(crate) quads: &'a [u32],
    pub(crate) scales: &'a [f32],
    pub(crate) corrections: &'a [i32],
}

/// Where a tile's outputs go in its rows of the output.
pub(crate) struct Tile {
    /// Real rows (the last panel may have fewer than `MR`).
    pub(crate) rows: usize,
    /// Real columns (the last panel may have fewer than `NR`).
    pub(crate) cols: usize,
    pub(crate) first_col: usize,
    pub(crate) ldc: usize,
}

/// The tile kernels. Each computes the same exact integer sums and scales them in the same
/// order, so each gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// AVX512-VNNI: 64 multiply-adds per instruction.
    #[cfg(target_arch = "x86_64")]
    Vnni,
    /// AVX2 (`vpmaddubsw`, `vpmaddwd`): 32 per three instructions, about the f32 FMA rate.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// One value at a time.
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU runs, or a slower one that `AGINET_INT8_KERNEL` names
    /// (`avx2`, `portable`: for benchmarks; every kernel gives the same bits).
    pub(crate) fn best() -> Self {
        static CHOICE: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let best = Self::fastest();
            match std::env::var("AGINET_INT8_KERNEL").as_deref() {
                #[cfg(target_arch = "x86_64")]
                Ok("avx2") if best == Self::Vnni => Self::Avx2,
                Ok("portable") => Self::Portable,
                _ => best,
            }
        })
    }

    /// The fastest kernel this CPU runs.
    fn fastest() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
                return Self::Vnni;
            }
            if crate::nn::fast_exp::has_avx2_fma() {
                return Self::Avx2;
            }
        }
        Self::Portable
    }
}

/// The tile with AVX2: per block, the integer sums of a row and 8 columns in one register
/// (`vpmaddubsw` of `|w|` by `x` with `w`'s sign, whose pairs of products stay within 16 bits
/// since `|x| ≤ 127` and `|w| ≤ 128`, then `vpmaddwd` by ones), then scaled and added into f32
/// sums as the other kernels do.
///
/// # Safety
/// The CPU has AVX2; `a` and `b` hold `blocks` blocks; `out` holds the tile's rows at `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_tile(
    blocks: usize,
    a: &Operand,
    b: &WeightPanel,
    out: &mut [f32],
    t: &Tile,
) {
    use std::arch::x86_64::*;
    const V: usize = NR / 8;
    let mut sums = [[_mm256_setzero_ps(); V]; MR];
    let ones = _mm256_set1_epi16(1);
    let flip = _mm256_set1_epi8(-128);
    for blk in 0..blocks {
        let mut dots = [[_mm256_setzero_si256(); V]; MR];
        for q in 0..QUADS {
            let wq = b.quads[(blk * QUADS + q) * NR..][..NR].as_ptr();
            let w: [__m256i; V] = std::array::from_fn(|j| _mm256_loadu_si256(wq.add(8 * j).cast()));
            let magnitude: [__m256i; V] = std::array::from_fn(|j| _mm256_abs_epi8(w[j]));
            let xq = &a.quads[(blk * QUADS + q) * MR..][..MR];
            for (row, &x) in dots.iter_mut().zip(xq) {
                // `q + 128` back to the signed `q`.
                let x = _mm256_xor_si256(_mm256_set1_epi32(x as i32), flip);
                for ((dot, w), m) in row.iter_mut().zip(&w).zip(&magnitude) {
                    let pairs = _mm256_maddubs_epi16(*m, _mm256_sign_epi8(x, *w));
                    *dot = _mm256_add_epi32(*dot, _mm256_madd_epi16(pairs, ones));
                }
            }
        }
        let ws = b.scales[blk * NR..][..NR].as_ptr();
        let w_scale: [__m256; V] = std::array::from_fn(|j| _mm256_loadu_ps(ws.add(8 * j)));
        let x_scale = &a.scales[blk * MR..][..MR];
        for ((row, dot_row), &xs) in sums.iter_mut().zip(&dots).zip(x_scale) {
            let xs = _mm256_set1_ps(xs);
            for ((sum, dot), ws) in row.iter_mut().zip(dot_row).zip(&w_scale) {
                let scale = _mm256_mul_ps(*ws, xs);
                *sum = _mm256_add_ps(*sum, _mm256_mul_ps(_mm256_cvtepi32_ps(*dot), scale));
            }
        }
    }
    for (i, row) in sums.iter().enumerate().take(t.rows) {
        let mut values = [0f32; NR];
        for (j, v) in row.iter().enumerate() {
            _mm256_storeu_ps(values.as_mut_ptr().add(8 * j), *v);
        }
        let first = i * t.ldc + t.first_col;
        out[first..first + t.cols].copy_from_slice(&values[..t.cols]);
    }
}

/// The tile, one output at a time, with the kernel's operations in the kernel's order.
pub(crate) fn portable_tile(
    blocks: usize,
    a: &Operand,
    b: &WeightPanel,
    out: &mut [f32],
    t: &Tile,
) {
    for i in 0..t.rows {
        for j in 0..t.cols {
            let mut sum = 0f32;
            for blk in 0..blocks {
                let mut dot = b.corrections[blk * NR + j];
                for q in 0..QUADS {
                    let xs = a.quads[(blk * QUADS + q) * MR + i].to_le_bytes();
                    let ws = b.quads[(blk * QUADS + q) * NR + j].to_le_bytes();
                    for (x, w) in xs.iter().zip(ws) {
                        dot += i32::from(*x) * i32::from(w as i8);
                    }
                }
                let scale = b.scales[blk * NR + j] * a.scales[blk * MR + i];
                sum += dot as f32 * scale;
            }
            out[i * t.ldc + t.first_col + j] = sum;
        }
    }
}

/// The tile with AVX512-VNNI: `MR × NR` integer sums per block in registers, then scaled and
/// added into `MR × NR` f32 sums.
///
/// # Safety
/// The CPU has AVX-512F and AVX512-VNNI; `a` and `b` hold `blocks` blocks; `out` holds the
/// tile's rows at `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
pub(crate) unsafe fn vnni_tile(
    blocks: usize,
    a: &Operand,
    b: &WeightPanel,
    out: &mut [f32],
    t: &Tile,
) {
    use std::arch::x86_64::*;
    let mut sums = [[_mm512_setzero_ps(); NV]; MR];
    for blk in 0..blocks {
        let corrections = b.corrections[blk * NR..][..NR].as_ptr();
        let start: [__m512i; NV] =
            std::array::from_fn(|j| _mm512_loadu_si512(corrections.add(16 * j).cast()));
        let mut dots = [start; MR];
        for q in 0..QUADS {
            let wq = b.quads[(blk * QUADS + q) * NR..][..NR].as_ptr();
            let w: [__m512i; NV] =
                std::array::from_fn(|j| _mm512_loadu_si512(wq.add(16 * j).cast()));
            let xq = &a.quads[(blk * QUADS + q) * MR..][..MR];
            for (row, &x) in dots.iter_mut().zip(xq) {
                let x = _mm512_set1_epi32(x as i32);
                for (dot, w) in row.iter_mut().zip(&w) {
                    *dot = _mm512_dpbusd_epi32(*dot, x, *w);
                }
            }
        }
        let ws = b.scales[blk * NR..][..NR].as_ptr();
        let w_scale: [__m512; NV] = std::array::from_fn(|j| _mm512_loadu_ps(ws.add(16 * j)));
        let x_scale = &a.scales[blk * MR..][..MR];
        for ((row, dot_row), &xs) in sums.iter_mut().zip(&dots).zip(x_scale) {
            let xs = _mm512_set1_ps(xs);
            for ((sum, dot), ws) in row.iter_mut().zip(dot_row).zip(&w_scale) {
                let scale = _mm512_mul_ps(*ws, xs);
                *sum = _mm512_add_ps(*sum, _mm512_mul_ps(_mm512_cvtepi32_ps(*dot), scale));
            }
        }
    }
    for (i, row) in sums.iter().enumerate().take(t.rows) {
        for (j, v) in row.iter().enumerate() {
            let first = 16 * j;
            if first >= t.cols {
                break;
            }
            let lanes = (t.cols - first).min(16);
            let mask: __mmask16 = if lanes == 16 {
                0xffff
            } else {
                (1u16 << lanes) - 1
            };
            let dst = out.as_mut_ptr().add(i * t.ldc + t.first_col + first);
            _mm512_mask_storeu_ps(dst, mask, *v);
        }
    }
}
