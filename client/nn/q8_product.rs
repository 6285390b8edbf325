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

use rayon::prelude::*;

/// Values per Q8_0 block.
const BLOCK: usize = 32;
/// Bytes per Q8_0 block: the f16 scale, then 32 signed bytes.
const BLOCK_BYTES: usize = 34;
/// Groups of four values per block (one `vpdpbusd` lane each).
const QUADS: usize = BLOCK / 4;
/// Rows of `x` per tile.
const MR: usize = 6;
/// 16-lane vectors of outputs per tile row.
const NV: usize = 2;
/// Columns (rows of `W`) per tile.
const NR: usize = 16 * NV;
/// Bytes of packed weight a thread walks at a time: about half of a Zen 4 core's L2.
const W_CHUNK_BYTES: usize = 512 << 10;

/// Why a weight cannot be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The bytes are not `n · k / 32` Q8_0 blocks.
    #[error("Q8_0 data of {got} bytes for a {n}×{k} weight (expected {want})")]
    Size {
        /// Rows.
        n: usize,
        /// Columns.
        k: usize,
        /// Bytes given.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// The row length is not a whole number of blocks.
    #[error("rows of {0} values are not whole blocks of 32")]
    Width(usize),
}

/// A Q8_0 weight (`n` rows of `k`) laid out for the product: panels of 32 rows, each block's
/// quads interleaved across the panel's rows, with the rows' scales and corrections.
pub struct PackedWeight {
    n: usize,
    k: usize,
    /// `[panel][block][quad][row of panel]`: four signed bytes.
    quads: Vec<u32>,
    /// `[panel][block][row of panel]`: the block's scale.
    scales: Vec<f32>,
    /// `[panel][block][row of panel]`: `−128 · Σ q` over the block.
    corrections: Vec<i32>,
}

impl std::fmt::Debug for PackedWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedWeight({}×{})", self.n, self.k)
    }
}

impl PackedWeight {
    /// A weight of no rows, to pack into later ([`PackedWeight::pack_q8_0`]).
    pub fn empty() -> Self {
        Self {
            n: 0,
            k: 0,
            quads: Vec::new(),
            scales: Vec::new(),
            corrections: Vec::new(),
        }
    }

    /// Packs `n` rows of `k` values given as Q8_0 blocks, row after row (GGUF's layout).
    pub fn from_q8_0(bytes: &[u8], n: usize, k: usize) -> Result<Self, PackError> {
        let mut packed = Self::empty();
        packed.pack_q8_0(bytes, n, k)?;
        Ok(packed)
    }

    /// [`PackedWeight::from_q8_0`] into this weight's buffers, which grow as needed and are
    /// kept: for ops that pack one slice of a large weight after another.
    pub fn pack_q8_0(&mut self, bytes: &[u8], n: usize, k: usize) -> Result<(), PackError> {
        self.reshape(n, k)?;
        let blocks = k / BLOCK;
        let want = n * blocks * BLOCK_BYTES;
        if bytes.len() != want {
            return Err(PackError::Size {
                n,
                k,
                got: bytes.len(),
                want,
            });
        }
        for (row, row_bytes) in bytes.chunks_exact(blocks * BLOCK_BYTES).enumerate() {
            for (b, block) in row_bytes.chunks_exact(BLOCK_BYTES).enumerate() {
                let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                let q: &[u8; BLOCK] = block[2..].try_into().expect("32 quants");
                self.put(row, b, d, q);
            }
        }
        Ok(())
    }

    /// Packs `Wᵀ` for `W` given as `n` rows of `k` values in Q8_0 blocks (GGUF's layout; `n`
    /// and `k` whole blocks), into this weight's buffers: `k` rows of `n` values, each block of
    /// 32 along W's rows rounded again to 8 bits with an f32 scale, for the product `P·W` that
    /// sums over W's rows (`P·W = P·(Wᵀ)ᵀ`).
    pub fn pack_q8_0_transposed(
        &mut self,
        bytes: &[u8],
        n: usize,
        k: usize,
    ) -> Result<(), PackError> {
        if !k.is_multiple_of(BLOCK) {
            return Err(PackError::Width(k));
        }
        self.reshape(k, n)?;
        let k_blocks = k / BLOCK;
        let want = n * k_blocks * BLOCK_BYTES;
        if bytes.len() != want {
            return Err(PackError::Size {
                n,
                k,
                got: bytes.len(),
                want,
            });
        }
        #[cfg(target_arch = "x86_64")]
        if crate::nn::fast_exp::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; the sizes were checked above.
            unsafe { self.transposed_tiles_avx2(bytes, n, k) };
            return Ok(());
        }
        self.transposed_tiles(bytes, n, k, false);
        Ok(())
    }

    /// [`PackedWeight::transposed_tiles`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn transposed_tiles_avx2(&mut self, bytes: &[u8], n: usize, k: usize) {
        self.transposed_tiles(bytes, n, k, true);
    }

    /// The packing of [`PackedWeight::pack_q8_0_transposed`] (shape and sizes checked), one
    /// 32 × 32 tile at a time: W's rows `vb` (a block of Wᵀ's values) by W's block `b` (32 rows
    /// of Wᵀ), held as `tile[row of Wᵀ][value]`.
    #[inline(always)]
    fn transposed_tiles(&mut self, bytes: &[u8], n: usize, k: usize, avx2: bool) {
        let k_blocks = k / BLOCK;
        let mut tile = [[0f32; BLOCK]; BLOCK];
        for vb in 0..n / BLOCK {
            for b in 0..k_blocks {
                for (vi, column) in (0..BLOCK).map(|vi| (vi, vb * BLOCK + vi)) {
                    let block = &bytes[(column * k_blocks + b) * BLOCK_BYTES..][..BLOCK_BYTES];
                    let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                    for (row, &q) in tile.iter_mut().zip(&block[2..]) {
                        row[vi] = d * f32::from(q as i8);
                    }
                }
                for (j, values) in tile.iter().enumerate() {
                    let mut q = [0u8; BLOCK];
                    let d = round(values, &mut q, avx2);
                    self.put_offset(b * BLOCK + j, vb, d, &q);
                }
            }
        }
    }

    /// Packs `n` rows of `k` f32 values (row-major), each block of 32 rounded to 8 bits with
    /// the scale `max|w| / 127` kept in f32: for a weight requantized along another axis.
    pub fn from_f32_rows(values: &[f32], n: usize, k: usize) -> Result<Self, PackError> {
        let mut packed = Self::empty();
        packed.reshape(n, k)?;
        let want = n * k;
        if values.len() != want {
            return Err(PackError::Size {
                n,
                k,
                got: values.len() * 4,
                want: want * 4,
            });
        }
        let avx2 = crate::nn::fast_exp::has_avx2_fma();
        for (row, values) in values.chunks_exact(k.max(1)).enumerate() {
            for (b, block) in values.chunks_exact(BLOCK).enumerate() {
                let mut q = [0u8; BLOCK];
                let d = round(block, &mut q, avx2);
                packed.put_offset(row, b, d, &q);
            }
        }
        Ok(packed)
    }

    /// Sets the shape and sizes the buffers for it.
    fn reshape(&mut self, n: usize, k: usize) -> Result<(), PackError> {
        if !k.is_multiple_of(BLOCK) {
            return Err(PackError::Width(k));
        }
        let (panels, blocks) = (n.div_ceil(NR), k / BLOCK);
        self.n = n;
        self.k = k;
        // Padding rows of the last panel keep whatever they held: their outputs are never
        // stored, and a lane's sums depend on nothing but its own row.
        self.quads.resize(panels * blocks * QUADS * NR, 0);
        self.scales.resize(panels * blocks * NR, 0.0);
        self.corrections.resize(panels * blocks * NR, 0);
        Ok(())
    }

    /// Writes block `b` of row `row`: its scale `d` and its 32 signed quants.
    #[inline]
    fn put(&mut self, row: usize, b: usize, d: f32, q: &[u8; BLOCK]) {
        let blocks = self.k / BLOCK;
        let (panel, lane) = (row / NR, row % NR);
        let at = (panel * blocks + b) * NR + lane;
        self.scales[at] = d;
        self.corrections[at] = -128 * q.iter().map(|&v| i32::from(v as i8)).sum::<i32>();
        let quads = &mut self.quads[(panel * blocks + b) * QUADS * NR..][..QUADS * NR];
        for (j, four) in q.chunks_exact(4).enumerate() {
            quads[j * NR + lane] = u32::from_le_bytes([four[0], four[1], four[2], four[3]]);
        }
    }

    /// [`PackedWeight::put`] for quants given as `q + 128`, as [`round_block`] writes them.
    #[inline]
    fn put_offset(&mut self, row: usize, b: usize, d: f32, q: &[u8; BLOCK]) {
        let blocks = self.k / BLOCK;
        let (panel, lane) = (row / NR, row % NR);
        let at = (panel * blocks + b) * NR + lane;
        self.scales[at] = d;
        let sum = q.iter().map(|&v| i32::from(v)).sum::<i32>() - 128 * BLOCK as i32;
        self.corrections[at] = -128 * sum;
        let quads = &mut self.quads[(panel * blocks + b) * QUADS * NR..][..QUADS * NR];
        for (j, four) in q.chunks_exact(4).enumerate() {
            let offset = u32::from_le_bytes([four[0], four[1], four[2], four[3]]);
            quads[j * NR + lane] = offset ^ 0x8080_8080;
        }
    }

    /// Rows (the product's output width).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Bytes held.
    pub fn resident_bytes(&self) -> usize {
        4 * (self.quads.len() + self.scales.len() + self.corrections.len())
    }
}

/// Rows of `x` rounded to 8 bits per block of 32, laid out for the product.
pub struct QuantizedRows {
    m: usize,
    k: usize,
    /// `[panel][block][quad][row of panel]`: four bytes `q + 128`.
    quads: Vec<u32>,
    /// `[panel][block][row of panel]`: the block's scale.
    scales: Vec<f32>,
}

impl QuantizedRows {
    /// Rounds the `m` rows of `k` values in `x` (row-major; `k` a multiple of 32), a panel
    /// of rows per task on rayon's pool.
    pub fn new(x: &[f32], m: usize, k: usize) -> Self {
        Self::new_on(x, m, k, true, true)
    }

    /// [`QuantizedRows::new`] on the calling thread only: for ops that share their work across
    /// threads themselves. The same bits.
    pub fn new_on_this_thread(x: &[f32], m: usize, k: usize) -> Self {
        Self::new_on(x, m, k, true, false)
    }

    /// [`QuantizedRows::new`], rounding with AVX2 when `avx2` and the CPU has it, a panel per
    /// task on rayon's pool when `parallel`.
    fn new_on(x: &[f32], m: usize, k: usize, avx2: bool, parallel: bool) -> Self {
        assert_eq!(k % BLOCK, 0, "rows of whole blocks");
        assert_eq!(x.len(), m * k, "x holds m rows of k");
        let blocks = k / BLOCK;
        let panels = m.div_ceil(MR);
        // Padding rows are zeros: quads of 128 (q = 0) and scale 0.
        let mut quads = vec![0x8080_8080u32; panels * blocks * QUADS * MR];
        let mut scales = vec![0f32; panels * blocks * MR];
        let avx2 = avx2 && crate::nn::fast_exp::has_avx2_fma();
        let panel = |((quads, scales), rows): ((&mut [u32], &mut [f32]), &[f32])| {
            for (lane, values) in rows.chunks_exact(k).enumerate() {
                for (b, block) in values.chunks_exact(BLOCK).enumerate() {
                    let mut q = [0u8; BLOCK];
                    scales[b * MR + lane] = round(block, &mut q, avx2);
                    for (j, four) in q.chunks_exact(4).enumerate() {
                        quads[(b * QUADS + j) * MR + lane] =
                            u32::from_le_bytes([four[0], four[1], four[2], four[3]]);
                    }
                }
            }
        };
        if k > 0 {
            if parallel {
                quads
                    .par_chunks_mut(blocks * QUADS * MR)
                    .zip(scales.par_chunks_mut(blocks * MR))
                    .zip(x.par_chunks(MR * k))
                    .for_each(panel);
            } else {
                quads
                    .chunks_mut(blocks * QUADS * MR)
                    .zip(scales.chunks_mut(blocks * MR))
                    .zip(x.chunks(MR * k))
                    .for_each(panel);
            }
        }
        Self {
            m,
            k,
            quads,
            scales,
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.m
    }
}

/// [`round_block`], compiled for AVX2 when `avx2` (the same operations: the same bits).
fn round(block: &[f32], q: &mut [u8; BLOCK], avx2: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: the caller found AVX2 and FMA on this CPU.
        return unsafe { round_block_avx2(block, q) };
    }
    let _ = avx2;
    round_block(block, q)
}

/// [`round_block`] with AVX2: the same operations on eight values at a time (the largest
/// magnitude, one division for the scale and one for its inverse, a multiply and a
/// round-to-nearest-even per value), so the same bits for finite values.
///
/// # Safety
/// The CPU has AVX2 and FMA; `block` holds 32 values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn round_block_avx2(block: &[f32], q: &mut [u8; BLOCK]) -> f32 {
    use std::arch::x86_64::*;
    assert_eq!(block.len(), BLOCK, "a block of 32 values");
    let p = block.as_ptr();
    let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(p.add(8 * i)));
    let sign = _mm256_set1_ps(-0.0);
    let abs = |x: __m256| _mm256_andnot_ps(sign, x);
    let m = _mm256_max_ps(
        _mm256_max_ps(abs(v[0]), abs(v[1])),
        _mm256_max_ps(abs(v[2]), abs(v[3])),
    );
    let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    let max = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps::<1>(m2, m2)));
    let d = max / 127.0;
    let inverse = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
    let offset = _mm256_set1_epi32(128);
    let r: [__m256i; 4] = std::array::from_fn(|i| {
        let scaled = _mm256_mul_ps(v[i], inverse);
        let rounded = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(scaled);
        _mm256_add_epi32(_mm256_cvtps_epi32(rounded), offset)
    });
    // 1…255 each: packed to bytes within 128-bit lanes, then the dwords put back in order.
    let bytes = _mm256_packus_epi16(
        _mm256_packs_epi32(r[0], r[1]),
        _mm256_packs_epi32(r[2], r[3]),
    );
    let ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(q.as_mut_ptr().cast(), ordered);
    d
}

/// Writes a block's values as `round(x / scale) + 128` (ties to even) into `q`; returns the
/// scale `max|x| / 127`.
#[inline(always)]
fn round_block(block: &[f32], q: &mut [u8; BLOCK]) -> f32 {
    let max = block.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = max / 127.0;
    let inverse = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (out, v) in q.iter_mut().zip(block) {
        *out = ((v * inverse).round_ties_even().clamp(-127.0, 127.0) as i32 + 128) as u8;
    }
    d
}

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

/// One row panel of the rounded activations.
struct Operand<'a> {
    quads: &'a [u32],
    scales: &'a [f32],
}

/// One panel of the packed weight.
struct WeightPanel<'a> {
    quads: &'a [u32],
    scales: &'a [f32],
    corrections: &'a [i32],
}

/// Where a tile's outputs go in its rows of the output.
struct Tile {
    /// Real rows (the last panel may have fewer than `MR`).
    rows: usize,
    /// Real columns (the last panel may have fewer than `NR`).
    cols: usize,
    first_col: usize,
    ldc: usize,
}

/// The tile kernels. Each computes the same exact integer sums and scales them in the same
/// order, so each gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
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
    fn best() -> Self {
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
unsafe fn avx2_tile(blocks: usize, a: &Operand, b: &WeightPanel, out: &mut [f32], t: &Tile) {
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
fn portable_tile(blocks: usize, a: &Operand, b: &WeightPanel, out: &mut [f32], t: &Tile) {
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
unsafe fn vnni_tile(blocks: usize, a: &Operand, b: &WeightPanel, out: &mut [f32], t: &Tile) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
