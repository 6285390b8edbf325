//! The operands of the int8 product (`q8_product`): a Q8_0 weight packed in panels of rows,
//! and activations rounded to 8 bits per block of 32 (`d = max|x| / 127`, `q = round(x / d)`,
//! ties to even, stored as `q + 128`), with an AVX2 rounding that gives the scalar one's bits.

use rayon::prelude::*;

/// Values per Q8_0 block.
pub(crate) const BLOCK: usize = 32;
/// Bytes per Q8_0 block: the f16 scale, then 32 signed bytes.
pub(crate) const BLOCK_BYTES: usize = 34;
/// Groups of four values per block (one `vpdpbusd` lane each).
pub(crate) const QUADS: usize = BLOCK / 4;
/// Rows of `x` per tile (and per panel of rounded rows).
pub(crate) const MR: usize = 6;
/// 16-lane vectors of outputs per tile row.
pub(crate) const NV: usize = 2;
/// Columns (rows of `W`) per tile (and per panel of the packed weight).
pub(crate) const NR: usize = 16 * NV;

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
    pub(crate) n: usize,
    pub(crate) k: usize,
    /// `[panel][block][quad][row of panel]`: four signed bytes.
    pub(crate) quads: Vec<u32>,
    /// `[panel][block][row of panel]`: the block's scale.
    pub(crate) scales: Vec<f32>,
    /// `[panel][block][row of panel]`: `−128 · Σ q` over the block.
    pub(crate) corrections: Vec<i32>,
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
    pub(crate) m: usize,
    pub(crate) k: usize,
    /// `[panel][block][quad][row of panel]`: four bytes `q + 128`.
    pub(crate) quads: Vec<u32>,
    /// `[panel][block][row of panel]`: the block's scale.
    pub(crate) scales: Vec<f32>,
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
    pub(crate) fn new_on(x: &[f32], m: usize, k: usize, avx2: bool, parallel: bool) -> Self {
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
