//! RMSNorm with a frozen weight, as one op with its own backward pass.
//!
//! `y = x · r · w` per row, with `r = 1 / √(mean(x²) + ε)`. candle's fused `rms_norm` has no
//! backward, and its differentiable `rms_norm_slow` keeps three row-sized tensors per call (the
//! square, the normalised rows, the product) and their gradients for the backward pass; with
//! six norms in each of Gemma's 18 blocks that is a large share of training memory. Here the
//! backward recomputes `r` from the input, which the graph keeps anyway:
//! `∂x = r · (g·w − x · r² · mean(g·w·x))`. Rows are independent and each is summed in order,
//! so results do not depend on the thread count.

use crate::nn::storage::{contiguous_f32, flat_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, D};
use rayon::prelude::*;

/// RMSNorm of `x` (…, width) with the frozen per-channel `weight` (width,).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    if crate::nn::device::generic_ops(x.device()) {
        return candle_nn::ops::rms_norm_slow(x, weight, eps);
    }
    let width = x.dim(D::Minus1)?;
    if weight.dims1()? != width {
        candle_core::bail!(
            "rms norm: weight of {:?} for rows of {width}",
            weight.shape()
        );
    }
    x.contiguous()?.apply_op1(RmsNorm {
        weight: weight.to_vec1()?,
        eps,
    })
}

/// The op behind [`rms_norm`].
#[derive(Clone)]
struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    /// `1 / √(mean(row²) + ε)`.
    fn inverse_rms(&self, row: &[f32]) -> f32 {
        let mean = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
        1.0 / (mean + self.eps).sqrt()
    }
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "aginet-rms-norm"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "rms norm")?;
        let width = self.weight.len();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(width)
            .zip(x.par_chunks(width))
            .for_each(|(out, row)| {
                let r = self.inverse_rms(row);
                for ((o, v), w) in out.iter_mut().zip(row).zip(&self.weight) {
                    *o = v * r * w;
                }
            });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (x, g) = (flat_f32(arg)?, flat_f32(grad_res)?);
        let width = self.weight.len();
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(width)
            .zip(x.par_chunks(width).zip(g.par_chunks(width)))
            .for_each(|(out, (row, grow))| {
                let r = self.inverse_rms(row);
                let dot = row
                    .iter()
                    .zip(grow)
                    .zip(&self.weight)
                    .map(|((v, gv), w)| gv * w * v)
                    .sum::<f32>()
                    / width as f32;
                for (((o, v), gv), w) in out.iter_mut().zip(row).zip(grow).zip(&self.weight) {
                    *o = r * (gv * w - v * r * r * dot);
                }
            });
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{max_abs_diff, weighted_backward};
    use candle_core::{Device, Var};

    /// Output and input gradient equal candle's differentiable `rms_norm_slow`.
    #[test]
    fn matches_the_autograd_version() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 2.0, (3, 5, 48), &dev).unwrap()).unwrap();
        let w = Tensor::randn(1f32, 0.3, 48, &dev).unwrap();
        let g = Tensor::randn(0f32, 1.0, (3, 5, 48), &dev).unwrap();
        let ours = rms_norm(x.as_tensor(), &w, 1e-6).unwrap();
        let theirs = candle_nn::ops::rms_norm_slow(x.as_tensor(), &w, 1e-6).unwrap();
        assert!(max_abs_diff(&ours, &theirs) < 1e-5);
        let ga = weighted_backward(&ours, &g);
        let gb = weighted_backward(&theirs, &g);
        let diff = max_abs_diff(
            ga.get(x.as_tensor()).unwrap(),
            gb.get(x.as_tensor()).unwrap(),
        );
        assert!(diff < 1e-4);
    }
}
