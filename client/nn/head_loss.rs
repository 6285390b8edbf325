//! The output head and the loss in one pass: per-row NLL of the targets under the logits
//! `h · Wᵀ`, computed a slice of W's rows (the vocabulary) at a time, so the (rows × vocab)
//! logits are never held. For Gemma's 262,144-token vocabulary and a batch of 4 × 128 those
//! logits alone are 512 MiB, and an autograd log-softmax keeps several tensors of that size
//! for its backward pass; here the largest temporaries are one slice of logits per thread (1 MiB
//! each).
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
//!
//! Threads: the vocabulary is cut into a fixed number of parts. Each part is one task that runs
//! its slices on one thread, with its own buffers and single-threaded products, and the parts'
//! running sums are merged in order at the end. That keeps both cores on the products for the
//! whole pass, where a product split across threads joins them after every slice, and the
//! result is the same bits whatever the thread count.

use crate::nn::frozen::FrozenLinear;
use crate::nn::q8_product::{self, PackedWeight, QuantizedRows};
use crate::nn::serial_gemm;
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Logit values one part holds at once, across all rows.
const SLICE_ELEMS: usize = 1 << 18;
/// Parts the vocabulary is cut into: enough to share evenly between 1, 2, 3, 4, 6 or 12
/// threads.
const PARTS: usize = 12;
/// Vocabulary entries per block of the int8 product that sums over them.
const INT8_BLOCK: usize = 32;

/// Per-row NLL (rows,) of `targets` under the logits `hidden · Wᵀ` of the frozen `head`, for
/// `hidden` of shape (rows, width) on the CPU; backpropagates into `hidden`.
pub fn nll_rows(
    head: &FrozenLinear,
    hidden: &Tensor,
    targets: &[u32],
) -> candle_core::Result<Tensor> {
    nll_rows_sliced(head, hidden, targets, SLICE_ELEMS)
}

/// [`nll_rows`] with at most `slice_elems` logits held at once per part.
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
    let (vocab, _) = head.shape()?;
    if let Some(t) = targets.iter().find(|t| **t as usize >= vocab) {
        candle_core::bail!("target {t} is outside the vocabulary of {vocab} entries");
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

/// The vocabulary entries of part `p` of `PARTS`, each part but the last starting and ending
/// on a multiple of `align`.
fn part_range(vocab: usize, p: usize, align: usize) -> Range<usize> {
    let edge = |p: usize| match p {
        PARTS => vocab,
        _ => vocab * p / PARTS / align * align,
    };
    edge(p)..edge(p + 1)
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
    /// Logits held at once per part.
    slice_elems: usize,
}

/// One part's running sums over its share of the vocabulary.
struct Part {
    /// Per row: the running max of the logits, `Σ exp(logit − max)`, and the target's logit if
    /// the target is in this part.
    state: Vec<(f32, f32, Option<f32>)>,
    /// With the gradient: per row `Σ exp(logit − max) · W[v]`, (rows × width) row-major.
    weighted: Vec<f32>,
    /// With the gradient: `W[target]` for the rows whose target is in this part.
    target_rows: Vec<(usize, Vec<f32>)>,
}

impl HeadNll {
    /// The running sums of the vocabulary entries in `range`, on the calling thread.
    fn part(
        &self,
        hidden: &[f32],
        rounded: Option<&QuantizedRows>,
        width: usize,
        range: Range<usize>,
        avx2: bool,
    ) -> candle_core::Result<Part> {
        let rows = self.targets.len();
        let per_slice = (self.slice_elems / rows.max(1)).max(1);
        // With int8 products, slices of whole blocks: the gradient's product sums over a
        // slice's entries in blocks of 32 (a short last slice is multiplied in f32).
        let per_slice = match rounded {
            Some(_) => (per_slice / INT8_BLOCK).max(1) * INT8_BLOCK,
            None => per_slice,
        };
        let mut part = Part {
            state: vec![(f32::NEG_INFINITY, 0.0, None); rows],
            weighted: vec![0.0; if self.with_gradient { rows * width } else { 0 }],
            target_rows: Vec::new(),
        };
        let mut w = Vec::new();
        let mut packed = PackedWeight::empty();
        let mut transposed = PackedWeight::empty();
        let mut product = Vec::new();
        let mut logits = vec![0f32; rows * per_slice.min(range.len())];
        let mut start = range.start;
        while start < range.end {
            let n = per_slice.min(range.end - start);
            let logits = &mut logits[..rows * n];
            let int8_gradient = self.with_gradient && rounded.is_some() && n % INT8_BLOCK == 0;
            if (self.with_gradient && !int8_gradient) || rounded.is_none() {
                self.head.rows_into(start, n, &mut w)?;
            }
            match rounded {
                Some(x) => {
                    self.head.pack_rows_into(start, n, &mut packed)?;
                    q8_product::product_into(x, &packed, logits);
                }
                None => serial_gemm::a_times_bt(logits, hidden, &w, rows, n, width),
            }
            for (r, row) in logits.chunks_exact_mut(n).enumerate() {
                let s = &mut part.state[r];
                if let Some(i) = index_in_slice(self.targets[r], start, n) {
                    s.2 = Some(row[i]);
                    if int8_gradient {
                        let mut row = Vec::new();
                        self.head.rows_into(start + i, 1, &mut row)?;
                        part.target_rows.push((r, row));
                    } else if self.with_gradient {
                        part.target_rows
                            .push((r, w[i * width..(i + 1) * width].to_vec()));
                    }
                }
                let (max, sum) = crate::nn::fast_exp::softmax_step(row, s.0, avx2);
                let rescale = crate::nn::fast_exp::exp(s.0 - max);
                s.1 = s.1 * rescale + sum;
                s.0 = max;
                if self.with_gradient && rescale != 1.0 {
                    for x in &mut part.weighted[r * width..(r + 1) * width] {
                        *x *= rescale;
                    }
                }
            }
            if int8_gradient {
                self.head
                    .pack_rows_transposed_into(start, n, &mut transposed)?;
                let p = QuantizedRows::new_on_this_thread(logits, rows, n);
                product.resize(rows * width, 0.0);
                q8_product::product_into(&p, &transposed, &mut product);
                for (sum, v) in part.weighted.iter_mut().zip(&product) {
                    *sum += v;
                }
            } else if self.with_gradient {
                serial_gemm::add_a_times_b(&mut part.weighted, logits, &w, rows, width, n);
            }
            start += n;
        }
        Ok(part)
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
        let hidden = crate::nn::storage::contiguous_f32(storage, layout, "head NLL")?;
        let (rows, width) = layout.shape().dims2()?;
        let (vocab, _) = self.head.shape()?;
        let avx2 = crate::nn::fast_exp::has_avx2_fma();
        let rounded = (self.head.int8_products()).then(|| QuantizedRows::new(hidden, rows, width));
        let parts = (0..PARTS)
            .into_par_iter()
            .map(|p| {
                let align = if rounded.is_some() { INT8_BLOCK } else { 1 };
                let range = part_range(vocab, p, align);
                self.part(hidden, rounded.as_ref(), width, range, avx2)
            })
            .collect::<candle_core::Result<Vec<Part>>>()?;

        let mut nll = Vec::with_capacity(rows);
        let mut gradient = vec![0f32; if self.with_gradient { rows * width } else { 0 }];
        for r in 0..rows {
            let max = parts
                .iter()
                .map(|p| p.state[r].0)
                .fold(f32::NEG_INFINITY, f32::max);
            let scales: Vec<f32> = (parts.iter())
                .map(|p| crate::nn::fast_exp::exp(p.state[r].0 - max))
                .collect();
            let sum: f32 = parts
                .iter()
                .zip(&scales)
                .map(|(p, c)| p.state[r].1 * c)
                .sum();
            let target = parts.iter().find_map(|p| p.state[r].2);
            nll.push(max + sum.ln() - target.unwrap_or(f32::NAN));
            if self.with_gradient {
                let out = &mut gradient[r * width..(r + 1) * width];
                for (p, c) in parts.iter().zip(&scales) {
                    let c = c / sum;
                    for (o, x) in out.iter_mut().zip(&p.weighted[r * width..(r + 1) * width]) {
                        *o += x * c;
                    }
                }
            }
        }
        if self.with_gradient {
            for (r, values) in parts.iter().flat_map(|p| &p.target_rows) {
                for (o, x) in gradient[r * width..(r + 1) * width].iter_mut().zip(values) {
                    *o -= x;
                }
            }
            let gradient = Tensor::from_vec(gradient, (rows, width), &Device::Cpu)?;
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
    use crate::test_util::on_threads;
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
        let head = FrozenLinear::quantized(q, crate::nn::frozen::FrozenMode::default()).unwrap();
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

    /// The loss and the gradient are the same bits on 1, 2 and 5 threads (the parts are fixed,
    /// and merged in order).
    #[test]
    fn the_result_does_not_depend_on_the_thread_count() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.5, (997, 64), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let head = FrozenLinear::quantized(q, crate::nn::frozen::FrozenMode::default()).unwrap();
        let h = Tensor::randn(0f32, 1.0, (7, 64), &dev).unwrap();
        let targets = [0u32, 996, 500, 83, 84, 1, 250];
        let run = |threads: usize| {
            on_threads(threads, || {
                let h = Var::from_tensor(&h).unwrap();
                let nll = nll_rows_sliced(&head, h.as_tensor(), &targets, 7 * 20).unwrap();
                let grads = nll.sum_all().unwrap().backward().unwrap();
                let grad = grads.get(h.as_tensor()).unwrap().flatten_all().unwrap();
                (
                    nll.to_vec1::<f32>().unwrap(),
                    grad.to_vec1::<f32>().unwrap(),
                )
            })
        };
        let one = run(1);
        assert!(one.0.iter().chain(&one.1).all(|x| x.is_finite()));
        assert_eq!(run(2), one);
        assert_eq!(run(5), one);
    }

    /// With int8 products the loss moves by at most twice the largest logit's rounding bound
    /// `e` (`Σ_b d_h/2 · Σ|w|`), and each gradient entry by at most
    /// `(exp(2e) − 1 + 34/254) · max|W|`: every probability moves by a factor within `exp(±2e)`,
    /// and the gradient's own product, which rounds the probabilities (per block of 32, by at
    /// most `Σ_block p / 254`) and `Wᵀ` (by at most `max|W| / 254`), moves the normalised sum by
    /// at most `(32 · 1.004 + 1 + ε) / 254 · max|W|`. The whole gradient's relative L2 error is
    /// checked under 2%. The bits do not depend on the thread count, and evaluation (untracked)
    /// gives the training pass's loss.
    #[test]
    fn int8_products_stay_within_the_rounding_bound() {
        let dev = Device::Cpu;
        let (vocab, width, rows) = (700, 64, 6);
        let w = Tensor::randn(0f32, 0.5, (vocab, width), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let dense: Vec<f32> = q
            .dequantize(&dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let copy = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let f32_head =
            FrozenLinear::quantized(q, crate::nn::frozen::FrozenMode::default()).unwrap();
        let int8_head =
            FrozenLinear::quantized(copy, crate::nn::frozen::FrozenMode::int8()).unwrap();
        assert!(int8_head.int8_products() && !f32_head.int8_products());
        let h = Tensor::randn(0f32, 1.0, (rows, width), &dev).unwrap();
        let hv: Vec<f32> = h.flatten_all().unwrap().to_vec1().unwrap();
        let targets = [0u32, 699, 350, 12, 13, 401];
        let run = |head: &FrozenLinear, threads: usize| {
            on_threads(threads, || {
                let h = Var::from_tensor(&h).unwrap();
                let nll = nll_rows_sliced(head, h.as_tensor(), &targets, rows * 50).unwrap();
                let grads = nll.sum_all().unwrap().backward().unwrap();
                let grad = grads.get(h.as_tensor()).unwrap().flatten_all().unwrap();
                let eval = nll_rows_sliced(head, &h.as_tensor().detach(), &targets, rows * 50)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                let nll = nll.to_vec1::<f32>().unwrap();
                assert_eq!(eval, nll, "evaluation gives the training pass's loss");
                (nll, grad.to_vec1::<f32>().unwrap())
            })
        };
        let exact = run(&f32_head, 2);
        let int8 = run(&int8_head, 1);
        assert_eq!(run(&int8_head, 3), int8);
        let max_w = dense.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
        for r in 0..rows {
            let x = &hv[r * width..][..width];
            let e = (0..vocab)
                .map(|v| {
                    (0..width / 32)
                        .map(|b| {
                            let xs = &x[b * 32..][..32];
                            let d = xs.iter().fold(0f32, |a, v| a.max(v.abs())) as f64 / 127.0;
                            let ws = &dense[v * width + b * 32..][..32];
                            d / 2.0 * ws.iter().map(|w| w.abs() as f64).sum::<f64>()
                        })
                        .sum::<f64>()
                })
                .fold(0f64, f64::max);
            let nll_err = (int8.0[r] - exact.0[r]).abs() as f64;
            assert!(
                nll_err <= 2.0 * e + 1e-5,
                "row {r}: loss moved {nll_err} > 2·{e}"
            );
            let bound = ((2.0 * e).exp() - 1.0 + 34.0 / 254.0) * max_w + 1e-5;
            for c in 0..width {
                let err = (int8.1[r * width + c] - exact.1[r * width + c]).abs() as f64;
                assert!(err <= bound, "row {r}: gradient moved {err} > {bound}");
            }
        }
        let (diff, norm) = int8
            .1
            .iter()
            .zip(&exact.1)
            .fold((0f64, 0f64), |(d, n), (a, b)| {
                (d + ((a - b) as f64).powi(2), n + (*b as f64).powi(2))
            });
        let rel = (diff / norm).sqrt();
        assert!(rel < 0.02, "gradient's relative L2 error {rel}");
        eprintln!("int8 head: gradient's relative L2 error {rel:.4}");
    }

    /// Targets that do not fit the rows or the vocabulary are refused, naming the problem.
    #[test]
    fn targets_that_do_not_fit_are_refused() {
        let dev = Device::Cpu;
        let w = Tensor::zeros((64, 32), candle_core::DType::F32, &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let head = FrozenLinear::quantized(q, crate::nn::frozen::FrozenMode::default()).unwrap();
        let cases: [(usize, &[u32], &str); 2] = [
            (3, &[1, 2], "3 rows but 2 targets"),
            (2, &[1, 64], "target 64 is outside the vocabulary of 64"),
        ];
        for (rows, targets, want) in cases {
            let h = Tensor::zeros((rows, 32), candle_core::DType::F32, &dev).unwrap();
            let err = nll_rows(&head, &h, targets).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    /// Untracked input: the same NLL, and no gradient is built.
    #[test]
    fn an_untracked_input_gives_the_same_loss_and_builds_no_gradient() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.5, (300, 32), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let head = FrozenLinear::quantized(q, crate::nn::frozen::FrozenMode::default()).unwrap();
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
