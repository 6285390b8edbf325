//! The output head and the loss in one pass: per-row NLL of the targets under the logits
//! `h · Wᵀ`, computed a slice of W's rows (the vocabulary) at a time, so the (rows × vocab)
//! logits are never held. For Gemma's 262,144-token vocabulary and a batch of 4 × 128 those
//! logits alone are 512 MiB, and an autograd log-softmax keeps several tensors of that size
//! for its backward pass; here the largest temporary is one slice of logits (16 MiB).
//!
//! Forward: for each slice, the logits of every row, folded into a running log-sum-exp per row
//! (max and scaled sum), and the target's logit picked when it falls in the slice; the NLL is
//! `logsumexp − logit[target]`. Backward: the same slices again; `∂NLL/∂logits = softmax − onehot`
//! (scaled by the incoming gradient), multiplied back through the slice of W into `∂/∂h`. The
//! logits are computed twice, which costs one more product with W and saves the memory.
//! Each row's arithmetic runs in slice order whatever the thread count, so results are
//! deterministic.

use crate::frozen::FrozenLinear;
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
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
        log_sum_exp: Arc::new(Mutex::new(Vec::new())),
        slice_elems,
    })
}

/// The custom op behind [`nll_rows`].
#[derive(Clone)]
struct HeadNll {
    head: FrozenLinear,
    targets: Arc<Vec<u32>>,
    /// Each row's log-sum-exp from the forward pass, for the backward pass.
    log_sum_exp: Arc<Mutex<Vec<f32>>>,
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
        // Running (max, sum of exp(logit − max), target logit) per row.
        let mut state = vec![(f32::NEG_INFINITY, 0f32, f32::NAN); rows];
        self.for_each_logit_slice(&hidden, |start, n, logits, _| {
            state
                .par_iter_mut()
                .zip(logits.par_chunks(n))
                .zip(self.targets.par_iter())
                .for_each(|((s, row), &target)| {
                    let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let max = s.0.max(top);
                    let sum: f32 = row.iter().map(|z| (z - max).exp()).sum();
                    s.1 = s.1 * (s.0 - max).exp() + sum;
                    s.0 = max;
                    if let Some(i) = (target as usize).checked_sub(start).filter(|i| *i < n) {
                        s.2 = row[i];
                    }
                });
            Ok(())
        })?;
        let lse: Vec<f32> = state.iter().map(|(m, s, _)| m + s.ln()).collect();
        let nll = state.iter().zip(&lse).map(|((_, _, z), l)| l - z).collect();
        *self.log_sum_exp.lock().expect("not poisoned") = lse;
        Ok((CpuStorage::F32(nll), Shape::from(rows)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let hidden = arg.detach().contiguous()?;
        let (rows, width) = hidden.dims2()?;
        let g: Vec<f32> = grad_res.detach().to_vec1()?;
        let lse = self.log_sum_exp.lock().expect("not poisoned").clone();
        if lse.len() != rows {
            candle_core::bail!("head NLL: backward before forward");
        }
        let mut grad = Tensor::zeros((rows, width), candle_core::DType::F32, &Device::Cpu)?;
        self.for_each_logit_slice(&hidden, |start, n, mut logits, w| {
            logits
                .par_chunks_mut(n)
                .zip(self.targets.par_iter())
                .zip(lse.par_iter().zip(g.par_iter()))
                .for_each(|((row, &target), (&l, &gi))| {
                    for z in row.iter_mut() {
                        *z = (*z - l).exp() * gi;
                    }
                    if let Some(i) = (target as usize).checked_sub(start).filter(|i| *i < n) {
                        row[i] -= gi;
                    }
                });
            let d_logits = Tensor::from_vec(logits, (rows, n), &Device::Cpu)?;
            grad = (&grad + d_logits.matmul(w)?)?;
            Ok(())
        })?;
        Ok(Some(grad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let diff = (&ours - &want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(
            diff.to_scalar::<f32>().unwrap() < 1e-4,
            "forward differs by {diff}"
        );

        let ga = (ours * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = (want * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (ga, gb) = (
            ga.get(h.as_tensor()).unwrap(),
            gb.get(h.as_tensor()).unwrap(),
        );
        let diff = (ga - gb).unwrap().abs().unwrap().max_all().unwrap();
        assert!(
            diff.to_scalar::<f32>().unwrap() < 1e-4,
            "gradient differs by {diff}"
        );
    }
}
