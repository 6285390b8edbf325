//! Rotary position embeddings, with tables sized to the context actually trained on.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, D};
use rayon::prelude::*;
use std::sync::Arc;

/// Precomputed cosines and sines for positions `0..max_len`, `head_dim / 2` frequencies each.
#[derive(Clone, Debug)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// The same tables as flat (max_len, half) rows, for the fused CPU rotation.
    cos_rows: Arc<Vec<f32>>,
    sin_rows: Arc<Vec<f32>>,
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
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        Ok(Self {
            cos_rows: Arc::new(cos.flatten_all()?.to_vec1()?),
            sin_rows: Arc::new(sin.flatten_all()?.to_vec1()?),
            cos,
            sin,
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
        if !crate::nn::device::generic_ops(x.device()) {
            if t > self.cos.dim(0)? {
                candle_core::bail!("rotary: {t} positions, tables for {}", self.cos.dim(0)?);
            }
            return x.contiguous()?.apply_op1(RotateHalves {
                cos: self.cos_rows.clone(),
                sin: self.sin_rows.clone(),
                seq: t,
                half: d / 2,
            });
        }
        rotate_halves(x, &self.cos.narrow(0, 0, t)?, &self.sin.narrow(0, 0, t)?)
    }

    /// [`Rope::apply_halves`] for one new position per sequence: `x` is (batch, heads, 1,
    /// head_dim) and row `r` of the batch sits at `positions[r]`, as when rows of different
    /// lengths each gain a token.
    pub fn apply_halves_at(&self, x: &Tensor, positions: &[u32]) -> candle_core::Result<Tensor> {
        let (b, _, t, d) = x.dims4()?;
        let max_len = self.cos.dim(0)?;
        if t != 1 || positions.len() != b {
            candle_core::bail!(
                "rotary: {b} rows of {t} positions, {} positions given",
                positions.len()
            );
        }
        if let Some(p) = positions.iter().find(|&&p| p as usize >= max_len) {
            candle_core::bail!("rotary: position {p}, tables for {max_len}");
        }
        let at = Tensor::new(positions, x.device())?;
        let cos = self.cos.index_select(&at, 0)?.reshape((b, 1, 1, d / 2))?;
        let sin = self.sin.index_select(&at, 0)?.reshape((b, 1, 1, d / 2))?;
        rotate_halves(x, &cos, &sin)
    }
}

/// The rotation of [`Rope::apply_halves`] composed of tensor ops: `(x[i], x[i + half])` by
/// angles whose cosines and sines `cos`, `sin` broadcast against either half of `x`.
fn rotate_halves(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x0 = x.narrow(D::Minus1, 0, half)?;
    let x1 = x.narrow(D::Minus1, half, half)?;
    let r0 = (x0.broadcast_mul(cos)? - x1.broadcast_mul(sin)?)?;
    let r1 = (x1.broadcast_mul(cos)? + x0.broadcast_mul(sin)?)?;
    Tensor::cat(&[r0, r1], D::Minus1)
}

/// [`Rope::apply_halves`] on the CPU as one op: a rotation per pair `(x[i], x[i + half])` by
/// each position's angle, whose backward is the rotation by the opposite angle. The
/// differentiable version keeps six half-sized tensors and their concatenation per call.
#[derive(Clone)]
struct RotateHalves {
    /// cos and sin of each position's angles, (positions, half) row-major, at least `seq`
    /// positions.
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    seq: usize,
    half: usize,
}

impl RotateHalves {
    /// Rotates every row of `x` (rows of `2·half`, `seq` rows per sequence) by `sign` times
    /// its position's angles.
    fn rotate(&self, x: &[f32], sign: f32) -> Vec<f32> {
        let (half, seq) = (self.half, self.seq);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(2 * half)
            .zip(x.par_chunks(2 * half))
            .enumerate()
            .for_each(|(r, (o, row))| {
                let at = (r % seq) * half;
                for i in 0..half {
                    let (c, s) = (self.cos[at + i], sign * self.sin[at + i]);
                    let (x0, x1) = (row[i], row[i + half]);
                    o[i] = x0 * c - x1 * s;
                    o[i + half] = x1 * c + x0 * s;
                }
            });
        out
    }
}

impl CustomOp1 for RotateHalves {
    fn name(&self) -> &'static str {
        "aginet-rotate-halves"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = crate::nn::storage::contiguous_f32(storage, layout, "rotary")?;
        Ok((CpuStorage::F32(self.rotate(x, 1.0)), layout.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let back = self.rotate(&crate::nn::storage::flat_f32(grad_res)?, -1.0);
        Ok(Some(Tensor::from_vec(back, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{max_abs_diff, weighted_backward};
    use candle_core::{Device, Var};

    /// The fused rotation and its gradient equal the differentiable composition.
    #[test]
    fn fused_halves_match_the_composed_rotation() {
        let dev = Device::Cpu;
        let rope = Rope::new(16, 12, 10_000.0, &dev).unwrap();
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 7, 16), &dev).unwrap()).unwrap();
        let g = Tensor::randn(0f32, 1.0, (2, 3, 7, 16), &dev).unwrap();
        let ours = rope.apply_halves(x.as_tensor()).unwrap();
        let (cos, sin) = (
            rope.cos.narrow(0, 0, 7).unwrap(),
            rope.sin.narrow(0, 0, 7).unwrap(),
        );
        let (x0, x1) = (
            x.as_tensor().narrow(D::Minus1, 0, 8).unwrap(),
            x.as_tensor().narrow(D::Minus1, 8, 8).unwrap(),
        );
        let r0 = (x0.broadcast_mul(&cos).unwrap() - x1.broadcast_mul(&sin).unwrap()).unwrap();
        let r1 = (x1.broadcast_mul(&cos).unwrap() + x0.broadcast_mul(&sin).unwrap()).unwrap();
        let want = Tensor::cat(&[r0, r1], D::Minus1).unwrap();
        assert!(max_abs_diff(&ours, &want) < 1e-6);
        let ga = weighted_backward(&ours, &g);
        let gb = weighted_backward(&want, &g);
        let diff = max_abs_diff(
            ga.get(x.as_tensor()).unwrap(),
            gb.get(x.as_tensor()).unwrap(),
        );
        assert!(diff < 1e-5);
    }

    /// Rotating one position per row equals rotating whole sequences and reading each row's
    /// position out of them.
    #[test]
    fn one_position_per_row_matches_the_whole_sequence() {
        let dev = Device::Cpu;
        let rope = Rope::new(16, 12, 10_000.0, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3, 2, 12, 16), &dev).unwrap();
        let whole = rope.apply_halves(&x).unwrap();
        let positions = [0u32, 5, 11];
        let picked = |t: &Tensor| {
            let rows: Vec<Tensor> = positions
                .iter()
                .enumerate()
                .map(|(r, &p)| t.get(r).unwrap().narrow(1, p as usize, 1).unwrap())
                .collect();
            Tensor::stack(&rows, 0).unwrap()
        };
        let ours = rope.apply_halves_at(&picked(&x), &positions).unwrap();
        assert!(max_abs_diff(&ours, &picked(&whole)) < 1e-6);
        assert!(rope.apply_halves_at(&picked(&x), &[0, 5, 12]).is_err());
    }
}
