//! Q8_0 weights to f32, for the slices the frozen layers multiply in f32.
//!
//! candle's `dequantize` zero-fills its output and converts one value at a time, after a copy of
//! the quantized bytes; on Gemma's 262,144 × 640 head, dequantized slice by slice every step,
//! that was about 7% of an evaluation (conversion, memset and memmove together). Here the
//! output is written once, eight values per AVX2 instruction where the CPU has it. A Q8_0 block
//! is 34 bytes: an f16 scale `d`, then 32 signed bytes `q`; each value is `d · q`, exactly, so
//! every path gives the same bits.

use crate::nn::fast_exp::has_avx2_fma;
use rayon::prelude::*;

/// Values per Q8_0 block.
pub const Q8_0_BLOCK: usize = 32;
/// Bytes per Q8_0 block: the f16 scale and the 32 quants.
pub const Q8_0_BYTES: usize = 34;
/// Blocks per parallel task.
const BLOCKS_PER_TASK: usize = 4096;

/// The f32 values of the Q8_0 blocks in `bytes` (a whole number of blocks).
pub(crate) fn q8_0(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(bytes.len() % Q8_0_BYTES, 0, "Q8_0 data of whole blocks");
    let blocks = bytes.len() / Q8_0_BYTES;
    let mut out: Vec<f32> = Vec::with_capacity(blocks * Q8_0_BLOCK);
    let avx2 = has_avx2_fma();
    out.spare_capacity_mut()[..blocks * Q8_0_BLOCK]
        .par_chunks_mut(BLOCKS_PER_TASK * Q8_0_BLOCK)
        .zip(bytes.par_chunks(BLOCKS_PER_TASK * Q8_0_BYTES))
        .for_each(|(values, bytes)| write_blocks(bytes, values, avx2));
    // SAFETY: the loop above wrote every one of the `blocks · 32` values.
    unsafe { out.set_len(blocks * Q8_0_BLOCK) };
    out
}

/// The f32 values of the Q8_0 blocks in `bytes` written into `out`, on the calling thread, for
/// callers that share the work across threads themselves.
pub(crate) fn q8_0_into(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len() % Q8_0_BYTES, 0, "Q8_0 data of whole blocks");
    assert_eq!(
        out.len(),
        bytes.len() / Q8_0_BYTES * Q8_0_BLOCK,
        "room for every value"
    );
    let avx2 = has_avx2_fma();
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and `block` only writes initialised
    // values, so `out` stays initialised.
    let out = unsafe { &mut *(out as *mut [f32] as *mut [std::mem::MaybeUninit<f32>]) };
    write_blocks(bytes, out, avx2);
}

/// Writes the values of every Q8_0 block in `bytes` into `out`, in order.
fn write_blocks(bytes: &[u8], out: &mut [std::mem::MaybeUninit<f32>], avx2: bool) {
    for (v, b) in out
        .chunks_exact_mut(Q8_0_BLOCK)
        .zip(bytes.chunks_exact(Q8_0_BYTES))
    {
        block(b, v, avx2);
    }
}

/// Writes the 32 values of one Q8_0 block.
#[inline(always)]
fn block(bytes: &[u8], out: &mut [std::mem::MaybeUninit<f32>], avx2: bool) {
    let d = half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32();
    let q = &bytes[2..Q8_0_BYTES];
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 was detected; `q` holds 32 bytes and `out` 32 values.
        return unsafe { block_avx2(d, q, out) };
    }
    let _ = avx2;
    for (o, &b) in out.iter_mut().zip(q) {
        o.write(d * (b as i8) as f32);
    }
}

/// [`block`]'s values with AVX2: four times eight bytes widened to i32, converted, scaled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_avx2(d: f32, q: &[u8], out: &mut [std::mem::MaybeUninit<f32>]) {
    use std::arch::x86_64::*;
    assert!(q.len() == Q8_0_BLOCK && out.len() == Q8_0_BLOCK);
    let scale = _mm256_set1_ps(d);
    for k in 0..4 {
        // SAFETY: bytes 8k..8k+8 of `q` and values 8k..8k+8 of `out` are in bounds (asserted).
        unsafe {
            let bytes = _mm_loadl_epi64(q.as_ptr().add(8 * k).cast());
            let values = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
            _mm256_storeu_ps(
                out.as_mut_ptr().add(8 * k).cast(),
                _mm256_mul_ps(values, scale),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    #[test]
    fn equals_candles_dequantization_bit_for_bit() {
        let dev = Device::Cpu;
        // More blocks than one task holds, and a last task that is short.
        let w = Tensor::randn(0f32, 1.0, (BLOCKS_PER_TASK + 37, Q8_0_BLOCK), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let want = q.dequantize(&dev).unwrap().flatten_all().unwrap();
        let got = q8_0(&q.data().unwrap());
        assert_eq!(got, want.to_vec1::<f32>().unwrap());
        // The portable loop gives the same bits.
        let bytes = q.data().unwrap();
        let mut portable = vec![std::mem::MaybeUninit::new(0f32); Q8_0_BLOCK];
        block(&bytes[..Q8_0_BYTES], &mut portable, false);
        // SAFETY: every value was initialised above.
        let portable: Vec<f32> = portable
            .iter()
            .map(|v| unsafe { v.assume_init() })
            .collect();
        assert_eq!(portable, got[..Q8_0_BLOCK]);
        // So does the single-threaded version, into a buffer.
        let mut serial = vec![f32::NAN; got.len()];
        q8_0_into(&bytes, &mut serial);
        assert_eq!(serial, got);
    }
}
