//! `x·Wᵀ` with `W` in Q8_0 and `x` rounded to 8 bits per block of 32, multiplied in integers:
//! the product llama.cpp runs for a quantized weight, blocked for the cache and written for
//! AVX512-VNNI (`vpdpbusd`, four int8 multiply-adds per lane), which runs 4.5 times the f32 FMA
//! rate here (`benches/dot_kernels.rs`).
//!
//! Each row of `x` is cut into blocks of 32 like `W`'s rows; a block `b` of row `m` becomes
//! `d_x · q` with `d_x = max|x| / 127` and `q = round(x / d_x)` in −127…127, so the product is
//! `Σ_b d_x[m][b] · d_w[n][b] · Σ_{k∈b} q_x[m][k] · q_w[n][k]`. The instruction multiplies
//! unsigned by signed bytes, so `q_x + 128` is stored and `128 · Σ q_w` taken off once per block
//! (kept with the packed weight). The integer sums are exact; the f32 part is one convert, two
//! multiplies and one add per block, in the same order on every path, so the VNNI kernel and the
//! portable one give the same bits on any CPU.
//!
//! Exactness: each activation moves by at most `d_x / 2`, so an output moves by at most
//! `Σ_b d_x[b] / 2 · Σ_{k∈b} |w_k|` (about 0.4% of `Σ |x·w|` at worst, 0.08% seen on random
//! data), plus f32 rounding. The weights are Q8_0 already; only the activations lose here.
//!
//! The operands are in `q8_pack`, the tile kernels in `q8_tiles`; this file drives them.

pub use crate::nn::q8_pack::{PackError, PackedWeight, QuantizedRows};
use crate::nn::q8_pack::{BLOCK, MR, NR, QUADS};
#[cfg(target_arch = "x86_64")]
use crate::nn::q8_tiles::{avx2_tile, vnni_tile};
use crate::nn::q8_tiles::{portable_tile, Kernel, Operand, Tile, WeightPanel};
use rayon::prelude::*;

/// Bytes of packed weight a thread walks at a time: about half of a Zen 4 core's L2.
const W_CHUNK_BYTES: usize = 512 << 10;

/// `x·Wᵀ`: `x.rows()` rows of `w.rows()` values, row-major. Row panels run in parallel on
/// rayon's pool; the bits do not depend on the thread count or on the CPU.
pub fn product(x: &QuantizedRows, w: &PackedWeight) -> Vec<f32> {
    let mut out = vec![0f32; x.m * w.n];
    product_on(x, w, &mut out, Kernel::best(), true);
    out
}

/// [`product`] written into `out` (`x.rows() × w.rows()`) on the calling thread only: for ops
/// that share their work across threads themselves. The same bits as [`product`].
pub fn product_into(x: &QuantizedRows, w: &PackedWeight, out: &mut [f32]) {
    product_on(x, w, out, Kernel::best(), false);
}

/// The product into `out` with `kernel`, over rayon's pool when `parallel`.
fn product_on(
    x: &QuantizedRows,
    w: &PackedWeight,
    out: &mut [f32],
    kernel: Kernel,
    parallel: bool,
) {
    assert_eq!(x.k, w.k, "x's rows and W's rows have the same length");
    assert_eq!(
        out.len(),
        x.m * w.n,
        "the output holds x's rows of W's rows"
    );
    if w.n == 0 || x.m == 0 {
        return;
    }
    let row_panels = x.m.div_ceil(MR);
    if !parallel {
        return row_group(x, w, 0, out, kernel);
    }
    // One group of row panels per thread.
    let per_group = row_panels.div_ceil(rayon::current_num_threads().max(1));
    out.par_chunks_mut(per_group * MR * w.n)
        .enumerate()
        .for_each(|(group, rows)| row_group(x, w, group * per_group, rows, kernel));
}

/// The outputs of the row panels from `first_panel` whose rows `out` holds, walking W a chunk
/// of panels at a time (a chunk stays in L2 while every row panel passes over it).
fn row_group(
    x: &QuantizedRows,
    w: &PackedWeight,
    first_panel: usize,
    out: &mut [f32],
    kernel: Kernel,
) {
    let (n, blocks) = (w.n, w.k / BLOCK);
    let w_panels = n.div_ceil(NR);
    let chunk = (W_CHUNK_BYTES / (blocks * (QUADS + 2) * NR * 4).max(1)).max(1);
    for first_wp in (0..w_panels).step_by(chunk) {
        for (p, rows) in out.chunks_mut(MR * n).enumerate() {
            let panel = first_panel + p;
            let a = Operand {
                quads: &x.quads[panel * blocks * QUADS * MR..][..blocks * QUADS * MR],
                scales: &x.scales[panel * blocks * MR..][..blocks * MR],
            };
            for wp in first_wp..(first_wp + chunk).min(w_panels) {
                let b = WeightPanel {
                    quads: &w.quads[wp * blocks * QUADS * NR..][..blocks * QUADS * NR],
                    scales: &w.scales[wp * blocks * NR..][..blocks * NR],
                    corrections: &w.corrections[wp * blocks * NR..][..blocks * NR],
                };
                let tile = Tile {
                    rows: rows.len() / n,
                    cols: (n - wp * NR).min(NR),
                    first_col: wp * NR,
                    ldc: n,
                };
                match kernel {
                    // SAFETY (both): `Kernel::best` found the CPU features; the operands hold
                    // `blocks` blocks of their panels and `rows` the tile.
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Vnni => unsafe { vnni_tile(blocks, &a, &b, rows, &tile) },
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Avx2 => unsafe { avx2_tile(blocks, &a, &b, rows, &tile) },
                    Kernel::Portable => portable_tile(blocks, &a, &b, rows, &tile),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::q8_pack::BLOCK_BYTES;

    /// A Q8_0 weight of `n × k` with varied scales and quants, as GGUF stores it.
    fn q8_0_weight(n: usize, k: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            s >> 8
        };
        let mut bytes = Vec::new();
        for _ in 0..n * k / BLOCK {
            let d = half::f16::from_f32(0.002 + (next() % 1000) as f32 * 1e-5);
            bytes.extend_from_slice(&d.to_le_bytes());
            for _ in 0..BLOCK {
                bytes.push(((next() % 256) as i32 - 128) as i8 as u8);
            }
        }
        bytes
    }

    fn activations(m: usize, k: usize) -> Vec<f32> {
        (0..m * k)
            .map(|i| ((i as f32 * 0.731).sin() * 3.0) * if i % 97 == 0 { 40.0 } else { 1.0 })
            .collect()
    }

    /// The weight's values in f64.
    fn dequantized(bytes: &[u8]) -> Vec<f64> {
        bytes
            .chunks_exact(BLOCK_BYTES)
            .flat_map(|b| {
                let d = half::f16::from_le_bytes([b[0], b[1]]).to_f64();
                b[2..].iter().map(move |&q| d * f64::from(q as i8))
            })
            .collect()
    }

    /// Every output is within the bound the activations' rounding sets, on shapes with partial
    /// tiles in both directions.
    #[test]
    fn the_product_is_within_the_rounding_bound() {
        for (m, n, k) in [(1, 1, 32), (7, 45, 96), (13, 64, 640), (6, 32, 64)] {
            let bytes = q8_0_weight(n, k, (m * n + k) as u32);
            let x = activations(m, k);
            let got = product(
                &QuantizedRows::new(&x, m, k),
                &PackedWeight::from_q8_0(&bytes, n, k).unwrap(),
            );
            let w = dequantized(&bytes);
            for r in 0..m {
                for c in 0..n {
                    let (mut exact, mut bound, mut size) = (0f64, 0f64, 0f64);
                    for blk in 0..k / BLOCK {
                        let xs = &x[r * k + blk * BLOCK..][..BLOCK];
                        let ws = &w[c * k + blk * BLOCK..][..BLOCK];
                        let d = xs.iter().fold(0f32, |a, v| a.max(v.abs())) as f64 / 127.0;
                        for (xv, wv) in xs.iter().zip(ws) {
                            exact += *xv as f64 * wv;
                            bound += d / 2.0 * wv.abs();
                            size += (*xv as f64 * wv).abs();
                        }
                    }
                    let err = (got[r * n + c] as f64 - exact).abs();
                    assert!(
                        err <= bound * 1.001 + 1e-6 * size,
                        "({m},{n},{k})[{r},{c}]: {} vs {exact}: error {err} > bound {bound}",
                        got[r * n + c]
                    );
                }
            }
        }
    }

    /// The VNNI kernel (where the CPU has it) and the portable one give the same bits, as do the
    /// AVX2 and scalar rounding of the activations, on any thread count.
    #[test]
    fn every_path_gives_the_same_bits() {
        let (m, n, k) = (17, 77, 160);
        let w = PackedWeight::from_q8_0(&q8_0_weight(n, k, 7), n, k).unwrap();
        let x = QuantizedRows::new(&activations(m, k), m, k);
        let fast = product(&x, &w);
        let mut slow = vec![0f32; m * n];
        product_on(&x, &w, &mut slow, Kernel::Portable, true);
        #[cfg(target_arch = "x86_64")]
        if crate::nn::fast_exp::has_avx2_fma() {
            let mut avx2 = vec![0f32; m * n];
            product_on(&x, &w, &mut avx2, Kernel::Avx2, true);
            assert_eq!(avx2, slow, "AVX2 and portable kernels agree");
        }
        let mut serial = vec![0f32; m * n];
        product_into(&x, &w, &mut serial);
        assert_eq!(fast, serial);
        assert_eq!(fast, slow);
        let rows = activations(m, k);
        let scalar = QuantizedRows::new_on(&rows, m, k, false, true);
        let serial = QuantizedRows::new_on_this_thread(&rows, m, k);
        assert_eq!(serial.quads, x.quads);
        assert_eq!(serial.scales, x.scales);
        assert_eq!(scalar.quads, x.quads, "AVX2 and scalar rounding agree");
        assert_eq!(scalar.scales, x.scales);
        let one = crate::test_util::on_threads(1, || product(&x, &w));
        assert_eq!(fast, one);
    }

    /// Packing a weight into the buffers of a larger one gives the product of a fresh packing.
    #[test]
    fn packing_into_used_buffers_gives_the_same_product() {
        let (m, k) = (9, 96);
        let x = QuantizedRows::new(&activations(m, k), m, k);
        let mut reused = PackedWeight::from_q8_0(&q8_0_weight(70, k, 3), 70, k).unwrap();
        let small = q8_0_weight(37, k, 4);
        reused.pack_q8_0(&small, 37, k).unwrap();
        let fresh = PackedWeight::from_q8_0(&small, 37, k).unwrap();
        assert_eq!(product(&x, &reused), product(&x, &fresh));
    }

    /// A weight given in f32 and rounded per block: every output is within the bound of both
    /// roundings (the activations' and the weight's), against the exact f32 product.
    #[test]
    fn an_f32_weight_is_rounded_within_its_bound() {
        let (m, n, k) = (11, 40, 128);
        let w: Vec<f32> = (0..n * k)
            .map(|i| (i as f32 * 0.377).cos() * 0.05)
            .collect();
        let x = activations(m, k);
        let got = product(
            &QuantizedRows::new(&x, m, k),
            &PackedWeight::from_f32_rows(&w, n, k).unwrap(),
        );
        for r in 0..m {
            for c in 0..n {
                let (mut exact, mut bound) = (0f64, 0f64);
                for blk in 0..k / BLOCK {
                    let xs = &x[r * k + blk * BLOCK..][..BLOCK];
                    let ws = &w[c * k + blk * BLOCK..][..BLOCK];
                    let dx = xs.iter().fold(0f32, |a, v| a.max(v.abs())) as f64 / 127.0;
                    let dw = ws.iter().fold(0f32, |a, v| a.max(v.abs())) as f64 / 127.0;
                    for (xv, wv) in xs.iter().zip(ws) {
                        let (xv, wv) = (*xv as f64, *wv as f64);
                        exact += xv * wv;
                        // |x̂ŵ − xw| ≤ |x|·dw/2 + |w|·dx/2 + dx·dw/4.
                        bound += xv.abs() * dw / 2.0 + wv.abs() * dx / 2.0 + dx * dw / 4.0;
                    }
                }
                let err = (got[r * n + c] as f64 - exact).abs();
                assert!(
                    err <= bound * 1.001 + 1e-6,
                    "[{r},{c}]: error {err} > {bound}"
                );
            }
        }
        assert!(matches!(
            PackedWeight::from_f32_rows(&w[1..], n, k),
            Err(PackError::Size { .. })
        ));
    }

    /// `Wᵀ` packed straight from W's Q8_0 blocks is the transposed f32 weight rounded per
    /// block: the same bits as packing that transpose.
    #[test]
    fn the_transposed_packing_rounds_the_transpose() {
        let (m, n, k) = (8, 64, 96);
        let bytes = q8_0_weight(n, k, 11);
        let w = dequantized(&bytes);
        let mut t = vec![0f32; n * k];
        for v in 0..n {
            for c in 0..k {
                t[c * n + v] = w[v * k + c] as f32;
            }
        }
        let mut packed = PackedWeight::from_q8_0(&q8_0_weight(200, k, 1), 200, k).unwrap();
        packed.pack_q8_0_transposed(&bytes, n, k).unwrap();
        let want = PackedWeight::from_f32_rows(&t, k, n).unwrap();
        let p = QuantizedRows::new(&activations(m, n), m, n);
        assert_eq!(packed.rows(), k);
        assert_eq!(product(&p, &packed), product(&p, &want));
        assert!(matches!(
            packed.pack_q8_0_transposed(&bytes, n - 1, k),
            Err(PackError::Width(_))
        ));
    }

    #[test]
    fn a_weight_of_the_wrong_size_is_refused() {
        let bytes = q8_0_weight(2, 64, 1);
        assert!(matches!(
            PackedWeight::from_q8_0(&bytes[1..], 2, 64),
            Err(PackError::Size { .. })
        ));
        assert!(matches!(
            PackedWeight::from_q8_0(&bytes, 4, 30),
            Err(PackError::Width(30))
        ));
    }
}
