//! The output head and the loss in one pass: per-row NLL of the targets under the logits
//! `h · Wᵀ`, computed a slice of W's rows (the vocabulary) at a time, so the (rows × vocab)
//! logits are never held. For Gemma's 262,144-token vocabulary and a batch of 4 × 128 those
//! logits alone are 512 MiB, and an autograd log-softmax keeps several tensors of that size
//! for its backward pass; here the largest temporary is one slice of logits (16 MiB).
//!
//! Forward: for each slice, the logits of every row, folded into a running log-sum-exp per row
//! (max and scaled sum), and the target's logit picked when it falls in the slice; the NLL is
//! `logsumexp − logit[target]`.
//!
//! When `h` is tracked for a gradient, the same pass also builds each row's `∂NLL/∂h =
//! softmax · W − W[target]`, the way flash attention builds its output: the running sum
//! `Σ exp(logit − max) · W[v]` is rescaled whenever a row's max rises, and divided by the
//! row's sum at the end. The backward pass only scales those rows by the incoming gradient.
//! That is two products with W per slice instead of three (recomputing the logits in the
//! backward pass, as this op first did), and it holds one more (rows × width) buffer.
//! Each row's arithmetic runs in slice order whatever the thread count, so results are
//! deterministic.

use crate::frozen::FrozenLinear;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Logit values held at once per slice, in f32s, across all rows.
const SLICE_ELEMS: usize = 4 << 20;

/// Per-row NLL (rows,) of `targets` under the logits `hidden · Wᵀ` of the frozen `head`, for
/// `hidden` of shape (rows, width) on the CPU; backpropagates into `hidden`.
pub fn nll_rows(
    head: &FrozenLinear,
    hidden: &Tensor,
    targets: &[u32],
) -> candle_core::Result<Tensor> {
    nll_rows_sliced(head, hidden, targets, SLICE_ELEMS)
}

/// [`nll_rows`] with at most `slice_elems` logits held at once.
fn nll_rows_sliced(
    head: &FrozenLinear,
    hidden: &Tensor,
    targets: &[u32],
    slice_elems: usize,
) -> candle_core::Result<Tensor> {
    let (rows, _) = hidden.dims2()?;
    if rows != targets.len() {
        candle_core::bail!("{rows} rows but {} targets", targets.len());
    }
    hidden.contiguous()?.apply_op1(HeadNll {
        head: head.clone(),
        targets: Arc::new(targets.to_vec()),
        with_gradient: hidden.track_op(),
        gradient: Arc::new(Mutex::new(None)),
        slice_elems,
    })
}

/// Where vocabulary entry `target` falls in the slice of `n` entries from `start`, if it does.
fn index_in_slice(target: u32, start: usize, n: usize) -> Option<usize> {
    (target as usize).checked_sub(start).filter(|i| *i < n)
}

/// The custom op behind [`nll_rows`].
#[derive(Clone)]
struct HeadNll {
    head: FrozenLinear,
    targets: Arc<Vec<u32>>,
    /// Whether the forward pass builds the gradient (the input is tracked).
    with_gradient: bool,
    /// Each row's `∂NLL/∂h` (rows, width), built by the forward pass for the backward pass.
    gradient: Arc<Mutex<Option<Tensor>>>,
    /// Logits held at once.
    slice_elems: usize,
}

impl HeadNll {
    /// Calls `f(first_vocab_row, logits)` with the (rows × slice) logits of each slice of W,
    /// as a flat row-major vector.
    fn for_each_logit_slice(
        &self,
        hidden: &Tensor,
        mut f: impl FnMut(usize, usize, Vec<f32>, &Tensor) -> candle_core::Result<()>,
    ) -> candle_core::Result<()> {
        let (rows, width) = hidden.dims2()?;
        let per_slice = (self.slice_elems / rows.max(1)).max(1) * width;
        self.head
            .for_each_row_slice(&Device::Cpu, per_slice, |start, w| {
                let logits = hidden.matmul(&w.t()?)?;
                let n = w.dim(0)?;
                f(start, n, logits.flatten_all()?.to_vec1::<f32>()?, &w)
            })
    }
}

impl CustomOp1 for HeadNll {
    fn name(&self) -> &'static str {
        "aginet-head-nll"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let values = crate::storage::contiguous_f32(storage, layout, "head NLL")?;
        let (rows, width) = layout.shape().dims2()?;
        let hidden = Tensor::from_slice(values, (rows, width), &Device::Cpu)?;
        let avx2 = crate::fast_exp::has_avx2_fma();
        // Running (max, sum of exp(logit − max), target logit) per row; with the gradient, the
        // running Σ exp(logit − max)·W[v] and the target's row of W.
        let mut state = vec![(f32::NEG_INFINITY, 0f32, f32::NAN); rows];
        let mut weighted = Tensor::zeros((rows, width), DType::F32, &Device::Cpu)?;
        let mut target_rows = vec![0f32; if self.with_gradient { rows * width } else { 0 }];
        self.for_each_logit_slice(&hidden, |start, n, mut logits, w| {
            // Each row's factor exp(old max − new max) for what it has summed so far.
            let mut rescale = vec![0f32; rows];
            state
                .par_iter_mut()
                .zip(logits.par_chunks_mut(n))
                .zip(self.targets.par_iter())
                .zip(rescale.par_iter_mut())
                .for_each(|(((s, row), &target), r)| {
                    if let Some(i) = index_in_slice(target, start, n) {
                        s.2 = row[i];
                    }
                    let (max, sum) = crate::fast_exp::softmax_step(row, s.0, avx2);
                    *r = crate::fast_exp::exp(s.0 - max);
                    s.1 = s.1 * *r + sum;
                    s.0 = max;
                });
            if self.with_gradient {
                let exps = Tensor::from_vec(logits, (rows, n), &Device::Cpu)?;
                let rescale = Tensor::from_vec(rescale, (rows, 1), &Device::Cpu)?;
                weighted = (weighted.broadcast_mul(&rescale)? + exps.matmul(w)?)?;
                let (rows_here, picked): (Vec<usize>, Vec<u32>) = (self.targets.iter())
                    .enumerate()
                    .filter_map(|(row, &t)| Some((row, index_in_slice(t, start, n)? as u32)))
                    .unzip();
                if !picked.is_empty() {
                    let picked = Tensor::from_vec(picked, rows_here.len(), &Device::Cpu)?;
                    let values = w.index_select(&picked, 0)?.to_vec2::<f32>()?;
                    for (row, value) in rows_here.into_iter().zip(values) {
                        target_rows[row * width..(row + 1) * width].copy_from_slice(&value);
                    }
                }
            }
            Ok(())
        })?;
        let nll = state.iter().map(|(m, s, z)| m + s.ln() - z).collect();
        if self.with_gradient {
            let sums: Vec<f32> = state.iter().map(|(_, s, _)| *s).collect();
            let sums = Tensor::from_vec(sums, (rows, 1), &Device::Cpu)?;
            let target_rows = Tensor::from_vec(target_rows, (rows, width), &Device::Cpu)?;
            let gradient = (weighted.broadcast_div(&sums)? - target_rows)?;
            *self.gradient.lock().expect("not poisoned") = Some(gradient);
        }
        Ok((CpuStorage::F32(nll), Shape::from(rows)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let rows = arg.dim(0)?;
        let gradient = self.gradient.lock().expect("not poisoned").clone();
        let Some(gradient) = gradient else {
            candle_core::bail!("head NLL: backward without a forward pass that built the gradient");
        };
        let g = grad_res.detach().reshape((rows, 1))?;
        Ok(Some(gradient.broadcast_mul(&g)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{max_abs_diff, weighted_backward};
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Var, D};

    /// Forward and gradient equal the plain head → log-softmax → pick, over several slices.
    #[test]
    fn matches_log_softmax_and_its_gradient() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.5, (1000, 64), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let dense_w = q.dequantize(&dev).unwrap();
        let head = FrozenLinear::quantized(q, crate::frozen::BackwardMode::Dequantize).unwrap();
        let h = Var::from_tensor(&Tensor::randn(0f32, 1.0, (9, 64), &dev).unwrap()).unwrap();
        let targets: Vec<u32> = vec![0, 999, 5, 500, 123, 77, 640, 1, 998];
        let weights = Tensor::randn(0f32, 1.0, 9, &dev).unwrap();

        // 9 rows × 111 logits per slice: ten slices, the last one short.
        let ours = nll_rows_sliced(&head, h.as_tensor(), &targets, 9 * 111).unwrap();
        let logits = h.as_tensor().matmul(&dense_w.t().unwrap()).unwrap();
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
        let idx = Tensor::new(targets.as_slice(), &dev)
            .unwrap()
            .unsqueeze(1)
            .unwrap();
        let want = logp
            .gather(&idx, 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .neg()
            .unwrap();
        let diff = max_abs_diff(&ours, &want);
        assert!(diff < 1e-4, "forward differs by {diff}");

        let ga = weighted_backward(&ours, &weights);
        let gb = weighted_backward(&want, &weights);
        let diff = max_abs_diff(
            ga.get(h.as_tensor()).unwrap(),
            gb.get(h.as_tensor()).unwrap(),
        );
        assert!(diff < 1e-4, "gradient differs by {diff}");
    }

    #[test]
    fn a_target_count_other_than_the_row_count_is_refused() {
        let dev = Device::Cpu;
        let w = Tensor::zeros((64, 32), candle_core::DType::F32, &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let head = FrozenLinear::quantized(q, crate::frozen::BackwardMode::Dequantize).unwrap();
        let h = Tensor::zeros((3, 32), candle_core::DType::F32, &dev).unwrap();
        let err = nll_rows(&head, &h, &[1, 2]).unwrap_err().to_string();
        assert!(err.contains("3 rows but 2 targets"), "{err}");
    }

    /// Untracked input: the same NLL, and no gradient is built.
    #[test]
    fn an_untracked_input_gives_the_same_loss_and_builds_no_gradient() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.5, (300, 32), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let head = FrozenLinear::quantized(q, crate::frozen::BackwardMode::Dequantize).unwrap();
        let h = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 32), &dev).unwrap()).unwrap();
        let targets = [3u32, 299, 0, 150, 42];
        let tracked = nll_rows_sliced(&head, h.as_tensor(), &targets, 5 * 70).unwrap();
        let detached = h.as_tensor().detach();
        let op = HeadNll {
            head: head.clone(),
            targets: Arc::new(targets.to_vec()),
            with_gradient: detached.track_op(),
            gradient: Arc::new(Mutex::new(None)),
            slice_elems: 5 * 70,
        };
        let untracked = detached.apply_op1(op.clone()).unwrap();
        assert!(!op.with_gradient);
        assert!(op.gradient.lock().unwrap().is_none());
        assert_eq!(
            tracked.to_vec1::<f32>().unwrap(),
            untracked.to_vec1::<f32>().unwrap()
        );
    }
}
