//! Rotary position embeddings, with tables sized to the context actually trained on.

use candle_core::{DType, Device, Tensor, D};

/// Precomputed cosines and sines for positions `0..max_len`, `head_dim / 2` frequencies each.
#[derive(Clone, Debug)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// Tables for `max_len` positions of heads of size `head_dim` with frequency base `base`.
    pub fn new(
        head_dim: usize,
        max_len: usize,
        base: f32,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| base.powf(-((2 * i) as f32) / head_dim as f32))
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
        let pos = Tensor::arange(0u32, max_len as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((max_len, 1))?;
        let angles = pos.broadcast_mul(&inv_freq)?;
        Ok(Self {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// Rotates adjacent pairs `(x[2i], x[2i+1])` of `x` (batch, heads, seq, head_dim), the
    /// layout llama GGUF files use for their query and key weights.
    pub fn apply_interleaved(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, h, t, d) = x.dims4()?;
        let cos = self.cos.narrow(0, 0, t)?.reshape((t, d / 2, 1))?;
        let sin = self.sin.narrow(0, 0, t)?.reshape((t, d / 2, 1))?;
        let pairs = x.reshape((b, h, t, d / 2, 2))?;
        let x0 = pairs.narrow(D::Minus1, 0, 1)?;
        let x1 = pairs.narrow(D::Minus1, 1, 1)?;
        let r0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
        let r1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
        Tensor::cat(&[r0, r1], D::Minus1)?.reshape((b, h, t, d))
    }

    /// Rotates the two halves `(x[i], x[i + head_dim/2])` of `x` (batch, heads, seq, head_dim),
    /// the layout Gemma's GGUF files keep (llama.cpp's "neox" rotary).
    pub fn apply_halves(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, _, t, d) = x.dims4()?;
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        let x0 = x.narrow(D::Minus1, 0, d / 2)?;
        let x1 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let r0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
        let r1 = (x1.broadcast_mul(&cos)? + x0.broadcast_mul(&sin)?)?;
        Tensor::cat(&[r0, r1], D::Minus1)
    }
}
