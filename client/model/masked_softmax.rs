//! The attention probabilities, `softmax(scale · scores)` under a causal, optionally sliding
//! window, as one op with its own backward pass.
//!
//! candle's differentiable softmax is five tensor ops (max, subtract, exp, sum, divide), after a
//! scaling and a broadcast add of the mask, and autograd keeps each intermediate and zero-fills an
//! accumulator for each in the backward pass; at Gemma's 18 blocks that is a hundred graph nodes a
//! step for (batch × heads × seq × seq) values. Here row `i` of each (seq × seq) matrix sees
//! columns `j ≤ i` with `i − j < window`; the backward pass needs only the output `P`:
//! `∂s = scale · P ⊙ (∂P − Σⱼ ∂P ⊙ P)`. Rows are independent and summed in order, so results do
//! not depend on the thread count.

use crate::fast_exp::exp;
use crate::storage::{contiguous_f32, flat_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// `softmax(scale · scores)` over the last dimension of `scores` (…, seq, seq), masked so row
/// `i` sees columns `j ≤ i` with `i − j < window`, on the CPU; backpropagates into `scores`.
pub fn masked_softmax(scores: &Tensor, scale: f64, window: usize) -> candle_core::Result<Tensor> {
    let dims = scores.dims();
    let n = dims.len();
    if n < 2 || dims[n - 1] != dims[n - 2] {
        candle_core::bail!(
            "masked softmax: scores of {:?} are not square",
            scores.shape()
        );
    }
    scores.contiguous()?.apply_op1(MaskedSoftmax {
        scale: scale as f32,
        window: window.max(1),
    })
}

/// The op behind [`masked_softmax`].
struct MaskedSoftmax {
    scale: f32,
    window: usize,
}

impl MaskedSoftmax {
    /// The visible columns of row `i`.
    fn visible(&self, i: usize) -> std::ops::Range<usize> {
        (i + 1).saturating_sub(self.window)..i + 1
    }
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "aginet-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = contiguous_f32(storage, layout, "masked softmax")?;
        let t = layout.shape().dims()[layout.shape().rank() - 1];
        let mut p = vec![0f32; s.len()];
        p.par_chunks_mut(t)
            .zip(s.par_chunks(t))
            .enumerate()
            .for_each(|(r, (out, row))| {
                let seen = self.visible(r % t);
                let max = row[seen.clone()]
                    .iter()
                    .fold(f32::NEG_INFINITY, |m, &v| m.max(v * self.scale));
                let mut sum = 0f32;
                for j in seen.clone() {
                    out[j] = exp(row[j] * self.scale - max);
                    sum += out[j];
                }
                for v in &mut out[seen] {
                    *v /= sum;
                }
            });
        Ok((CpuStorage::F32(p), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let shape = res.shape();
        let t = shape.dims()[shape.rank() - 1];
        let (p, dp) = (flat_f32(res)?, flat_f32(grad_res)?);
        let mut ds = vec![0f32; p.len()];
        ds.par_chunks_mut(t)
            .zip(p.par_chunks(t).zip(dp.par_chunks(t)))
            .enumerate()
            .for_each(|(r, (out, (p, dp)))| {
                let seen = self.visible(r % t);
                let mut dot = 0f32;
                for j in seen.clone() {
                    dot += dp[j] * p[j];
                }
                for j in seen {
                    out[j] = self.scale * p[j] * (dp[j] - dot);
                }
            });
        Ok(Some(Tensor::from_vec(ds, shape, res.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::weighted_backward;
    use candle_core::{Device, Var, D};

    #[test]
    fn scores_that_are_not_square_are_refused() {
        let scores = Tensor::zeros((2, 3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = masked_softmax(&scores, 1.0, 4).unwrap_err().to_string();
        assert!(
            err.contains("masked softmax: scores of [2, 3, 4] are not square"),
            "{err}"
        );
    }

    /// Equals scale, additive −∞ mask and candle's softmax, forward and backward, for a causal
    /// mask and a sliding window.
    #[test]
    fn matches_candles_masked_softmax_and_its_gradient() {
        let dev = Device::Cpu;
        for window in [1usize, 3, 7, 100] {
            let t = 7;
            let s =
                Var::from_tensor(&Tensor::randn(0f32, 2.0, (2, 3, t, t), &dev).unwrap()).unwrap();
            let weights = Tensor::randn(0f32, 1.0, (2, 3, t, t), &dev).unwrap();
            let ours = masked_softmax(s.as_tensor(), 0.5, window).unwrap();
            let mask = crate::model::shared::mask(t, window, &dev).unwrap();
            let want = candle_nn::ops::softmax(
                &(s.as_tensor() * 0.5)
                    .unwrap()
                    .broadcast_add(mask.additive())
                    .unwrap(),
                D::Minus1,
            )
            .unwrap();
            let flat = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (a, b) in flat(&ours).iter().zip(flat(&want)) {
                assert!((a - b).abs() < 1e-6, "forward {a} vs {b}");
            }
            let ga = weighted_backward(&ours, &weights);
            let gb = weighted_backward(&want, &weights);
            let (ga, gb) = (
                ga.get(s.as_tensor()).unwrap(),
                gb.get(s.as_tensor()).unwrap(),
            );
            for (a, b) in flat(ga).iter().zip(flat(gb)) {
                assert!((a - b).abs() < 1e-5, "gradient {a} vs {b}");
            }
        }
    }
}
