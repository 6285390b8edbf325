//! Grouped-query softmax attention under a causal, optionally sliding-window mask, as one op
//! with its own backward pass, on the CPU.
//!
//! Written with candle's ops, attention is a copy of the keys and of the values per query head,
//! the scores, the masked softmax, the product with the values and a transposed copy of the
//! result: seven graph nodes per block, each output kept until the backward pass, and each a
//! separate pass over memory. Here one op reads the queries (batch, heads, seq, head_dim) and
//! the keys and values (batch, kv_heads, seq, head_dim) and writes the heads side by side
//! (batch, seq, heads · head_dim), ready for the output projection. Row `i` sees keys `j ≤ i`
//! with `i − j < window`, scaled by 1/√head_dim.
//!
//! The backward pass recomputes each head's probabilities `P` from the queries and keys, as
//! flash attention does, so nothing but the op's inputs is kept. With `∂O` a head's incoming
//! gradient: `∂V += Pᵀ·∂O`, `∂P = ∂O·Vᵀ`, `∂S = scale · P ⊙ (∂P − Σⱼ ∂P ⊙ P)`, `∂Q = ∂S·K`,
//! `∂K += ∂Sᵀ·Q`, the key and value gradients summed over a group's query heads in order. Each
//! sequence of the batch is one task, its products single-threaded, so the result does not depend
//! on the thread count.

use crate::nn::fast_exp::exp;
use crate::nn::serial_gemm::{a_times_bt, add_a_times_b, add_at_times_b};
use crate::nn::storage::{contiguous_f32, flat_f32};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::ops::Range;

/// Attention of queries `q` (batch, heads, seq, head_dim) over keys `k` and values `v` (batch,
/// kv_heads, seq, head_dim), each group of `heads / kv_heads` query heads sharing one key and
/// value head, under a causal mask of `window` positions; the heads side by side in (batch, seq,
/// heads · head_dim). CPU only; backpropagates into all three.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, window: usize) -> candle_core::Result<Tensor> {
    let (b, nh, t, hd) = q.dims4()?;
    let (kb, nkv, kt, khd) = k.dims4()?;
    if (kb, kt, khd) != (b, t, hd) || k.dims() != v.dims() {
        candle_core::bail!(
            "attention: keys {:?} and values {:?} do not match queries {:?}",
            k.shape(),
            v.shape(),
            q.shape()
        );
    }
    if nkv == 0 || nh % nkv != 0 {
        candle_core::bail!(
            "attention: {nh} query heads do not split into groups of {nkv} key heads"
        );
    }
    let op = Attention {
        dims: Dims { b, nh, nkv, t, hd },
        window: window.max(1),
        scale: 1.0 / (hd as f32).sqrt(),
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// The sizes the op works on.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    nh: usize,
    nkv: usize,
    t: usize,
    hd: usize,
}

impl Dims {
    /// Values in one head of one sequence (seq × head_dim).
    fn head(&self) -> usize {
        self.t * self.hd
    }

    /// The key and value head that query head `h` reads.
    fn group(&self, h: usize) -> usize {
        h / (self.nh / self.nkv)
    }
}

/// The op behind [`attention`].
struct Attention {
    dims: Dims,
    window: usize,
    scale: f32,
}

/// A sequence's buffers for one head at a time: scores and probabilities (seq × seq), masked
/// entries left at zero.
struct Scratch {
    scores: Vec<f32>,
    probs: Vec<f32>,
}

impl Scratch {
    fn new(t: usize) -> Self {
        Self {
            scores: vec![0.0; t * t],
            probs: vec![0.0; t * t],
        }
    }
}

impl Attention {
    /// The keys row `i` sees.
    fn visible(&self, i: usize) -> Range<usize> {
        (i + 1).saturating_sub(self.window)..i + 1
    }

    /// The masked probabilities `softmax(scale · q·kᵀ)` of one head into `s.probs`.
    fn probabilities(&self, q: &[f32], k: &[f32], s: &mut Scratch) {
        let Dims { t, hd, .. } = self.dims;
        a_times_bt(&mut s.scores, q, k, t, t, hd);
        for (i, (row, p)) in s.scores.chunks(t).zip(s.probs.chunks_mut(t)).enumerate() {
            let seen = self.visible(i);
            let max = row[seen.clone()]
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| m.max(v * self.scale));
            let mut sum = 0f32;
            for j in seen.clone() {
                p[j] = exp(row[j] * self.scale - max);
                sum += p[j];
            }
            for v in &mut p[seen] {
                *v /= sum;
            }
        }
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "aginet-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (q, k, v) = (
            contiguous_f32(qs, ql, "attention")?,
            contiguous_f32(ks, kl, "attention")?,
            contiguous_f32(vs, vl, "attention")?,
        );
        let d = self.dims;
        let (head, width) = (d.head(), d.nh * d.hd);
        let mut out = vec![0f32; d.b * d.t * width];
        out.par_chunks_mut(d.t * width)
            .enumerate()
            .for_each(|(b, out)| {
                let mut s = Scratch::new(d.t);
                let mut o = vec![0f32; head];
                for h in 0..d.nh {
                    let kv = (b * d.nkv + d.group(h)) * head;
                    let qh = &q[(b * d.nh + h) * head..][..head];
                    self.probabilities(qh, &k[kv..][..head], &mut s);
                    o.fill(0.0);
                    add_a_times_b(&mut o, &s.probs, &v[kv..][..head], d.t, d.hd, d.t);
                    for (row, src) in out.chunks_mut(width).zip(o.chunks(d.hd)) {
                        row[h * d.hd..][..d.hd].copy_from_slice(src);
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((d.b, d.t, width))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (qv, kv, vv, go) = (
            flat_f32(q)?,
            flat_f32(k)?,
            flat_f32(v)?,
            flat_f32(grad_res)?,
        );
        let d = self.dims;
        let (head, width) = (d.head(), d.nh * d.hd);
        let mut dq = vec![0f32; qv.len()];
        let mut dk = vec![0f32; kv.len()];
        let mut dv = vec![0f32; vv.len()];
        dq.par_chunks_mut(d.nh * head)
            .zip(dk.par_chunks_mut(d.nkv * head))
            .zip(dv.par_chunks_mut(d.nkv * head))
            .enumerate()
            .for_each(|(b, ((dq, dk), dv))| {
                let mut s = Scratch::new(d.t);
                let mut dp = vec![0f32; d.t * d.t];
                let mut ds = vec![0f32; d.t * d.t];
                let mut dout = vec![0f32; head];
                let rows = &go[b * d.t * width..][..d.t * width];
                for h in 0..d.nh {
                    let g = d.group(h);
                    let qh = &qv[(b * d.nh + h) * head..][..head];
                    let kg = &kv[(b * d.nkv + g) * head..][..head];
                    let vg = &vv[(b * d.nkv + g) * head..][..head];
                    for (dst, row) in dout.chunks_mut(d.hd).zip(rows.chunks(width)) {
                        dst.copy_from_slice(&row[h * d.hd..][..d.hd]);
                    }
                    self.probabilities(qh, kg, &mut s);
                    add_at_times_b(&mut dv[g * head..][..head], &s.probs, &dout, d.t, d.hd, d.t);
                    a_times_bt(&mut dp, &dout, vg, d.t, d.t, d.hd);
                    for (i, ((p, dp), ds)) in s
                        .probs
                        .chunks(d.t)
                        .zip(dp.chunks(d.t))
                        .zip(ds.chunks_mut(d.t))
                        .enumerate()
                    {
                        let seen = self.visible(i);
                        let dot: f32 = seen.clone().map(|j| dp[j] * p[j]).sum();
                        for j in seen {
                            ds[j] = self.scale * p[j] * (dp[j] - dot);
                        }
                    }
                    add_a_times_b(&mut dq[h * head..][..head], &ds, kg, d.t, d.hd, d.t);
                    add_at_times_b(&mut dk[g * head..][..head], &ds, qh, d.t, d.hd, d.t);
                }
            });
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::model::shared::{attend_additive, mask};
    use crate::test_util::on_threads;
    use crate::test_util::{max_abs_diff, weighted_backward};
    use candle_core::{Device, Var};

    fn randn(shape: (usize, usize, usize, usize)) -> Var {
        Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()).unwrap()
    }

    /// Equals candle's composite attention under the additive mask, forward and backward, for
    /// grouped and plain heads, causal and sliding-window masks.
    #[test]
    fn matches_the_composite_attention_and_its_gradients() {
        let dev = Device::Cpu;
        let t = 7;
        for (nh, nkv) in [(4, 2), (3, 3), (4, 1)] {
            for window in [1, 3, 100] {
                let (q, k, v) = (
                    randn((2, nh, t, 8)),
                    randn((2, nkv, t, 8)),
                    randn((2, nkv, t, 8)),
                );
                let ours = attention(&q, &k, &v, window).unwrap();
                let additive = mask(t, window, &dev).unwrap().additive().clone();
                let want = attend_additive(&q, &k, &v, &additive).unwrap();
                assert!(
                    max_abs_diff(&ours, &want) < 1e-5,
                    "forward, {nh}/{nkv} heads"
                );
                let weights = Tensor::randn(0f32, 1.0, ours.shape(), &dev).unwrap();
                let (ga, gb) = (
                    weighted_backward(&ours, &weights),
                    weighted_backward(&want, &weights),
                );
                for x in [&q, &k, &v] {
                    let x = x.as_tensor();
                    let diff = max_abs_diff(ga.get(x).unwrap(), gb.get(x).unwrap());
                    assert!(
                        diff < 1e-4,
                        "gradient differs by {diff}, {nh}/{nkv} heads, window {window}"
                    );
                }
            }
        }
    }

    /// The output and the gradients are the same bits on 1 and 3 threads.
    #[test]
    fn the_result_does_not_depend_on_the_thread_count() {
        let (q, k, v) = (
            randn((3, 4, 9, 8)),
            randn((3, 2, 9, 8)),
            randn((3, 2, 9, 8)),
        );
        let weights = Tensor::randn(0f32, 1.0, (3, 9, 32), &Device::Cpu).unwrap();
        let run = |threads: usize| {
            on_threads(threads, || {
                let out = attention(&q, &k, &v, 4).unwrap();
                let grads = weighted_backward(&out, &weights);
                let flat = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let grad = |x: &Var| flat(grads.get(x.as_tensor()).unwrap());
                [flat(&out), grad(&q), grad(&k), grad(&v)]
            })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        let q = randn((2, 4, 5, 8));
        let cases = [
            (
                randn((2, 3, 5, 8)),
                randn((2, 3, 5, 8)),
                "4 query heads do not split into groups of 3",
            ),
            (
                randn((2, 2, 6, 8)),
                randn((2, 2, 6, 8)),
                "do not match queries [2, 4, 5, 8]",
            ),
            (
                randn((2, 2, 5, 8)),
                randn((2, 1, 5, 8)),
                "values [2, 1, 5, 8] do not match",
            ),
        ];
        for (k, v, want) in cases {
            let err = attention(&q, &k, &v, 5).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
