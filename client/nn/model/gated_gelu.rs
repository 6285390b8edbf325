//! Gemma's gated MLP activation, `gelu(gate) · up`, as one op with its own backward pass.
//!
//! GELU here is the tanh approximation (PyTorch's `gelu_pytorch_tanh`, candle's `gelu`):
//! `gelu(x) = ½x·(1 + tanh(u))`, `u = √(2/π)·(x + 0.044715·x³)`. Since `1 + tanh(u) = 2σ(2u)`,
//! it is `x·σ(2u)` with the logistic `σ(z) = 1 / (1 + e^(−z))`, which has no cancellation near
//! zero; and `gelu'(x) = s + x·s·(1 − s)·2u'` with `s = σ(2u)`, `u' = √(2/π)·(1 + 3·0.044715·x²)`.
//!
//! candle computes it as separate tensor ops with `powf` and `tanh` from libm, one value at a
//! time, and its autograd keeps the GELU output and the product for the backward pass; on Gemma's
//! 18 × (tokens × 2048) MLP activations that was about a tenth of a training step. Here `e^z`
//! is `nn::fast_exp::exp`, so the loops vectorise; the backward pass
//! recomputes `s` from the inputs, which the graph keeps anyway. Every value is computed on its
//! own, so results do not depend on the thread count.

use crate::nn::fast_exp::{exp, has_avx2_fma};
use crate::nn::storage::{contiguous_f32, flat_f32};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// `√(2/π)`.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh approximation.
const CUBIC: f32 = 0.044_715;
/// Values per parallel task.
const CHUNK: usize = 1 << 14;

/// `gelu(gate) · up` for tensors of one shape; backpropagates into both.
pub fn gated_gelu(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    if gate.shape() != up.shape() {
        candle_core::bail!(
            "gated gelu: gate {:?} and up {:?} differ",
            gate.shape(),
            up.shape()
        );
    }
    if crate::nn::device::generic_ops(gate.device()) {
        return gate.gelu()? * up;
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, GatedGelu)
}

/// The op behind [`gated_gelu`].
struct GatedGelu;

/// `σ(2u)` for the GELU input `x`, and `u'`.
#[inline(always)]
fn gate_sigmoid(x: f32) -> (f32, f32) {
    let x2 = x * x;
    let u = SQRT_2_OVER_PI * x * (1.0 + CUBIC * x2);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x2);
    (1.0 / (1.0 + exp(-2.0 * u)), du)
}

/// `out[i] = gelu(gate[i]) · up[i]`.
#[inline(always)]
fn forward_values(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        let (s, _) = gate_sigmoid(g);
        *o = g * s * u;
    }
}

/// `∂gate[i] = dy[i] · up[i] · gelu'(gate[i])` and `∂up[i] = dy[i] · gelu(gate[i])`.
#[inline(always)]
fn backward_values(gate: &[f32], up: &[f32], dy: &[f32], d_gate: &mut [f32], d_up: &mut [f32]) {
    for i in 0..gate.len() {
        let (g, (s, du)) = (gate[i], gate_sigmoid(gate[i]));
        let slope = s + g * s * (1.0 - s) * 2.0 * du;
        d_gate[i] = dy[i] * up[i] * slope;
        d_up[i] = dy[i] * g * s;
    }
}

/// [`forward_values`] compiled for AVX2 and FMA, where the loop vectorises eight wide.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_avx2(gate: &[f32], up: &[f32], out: &mut [f32]) {
    forward_values(gate, up, out)
}

/// [`backward_values`] compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_avx2(
    gate: &[f32],
    up: &[f32],
    dy: &[f32],
    d_gate: &mut [f32],
    d_up: &mut [f32],
) {
    backward_values(gate, up, dy, d_gate, d_up)
}

/// [`forward_values`], in parallel chunks, with the fastest build this CPU runs.
fn forward(gate: &[f32], up: &[f32]) -> Vec<f32> {
    let avx2 = has_avx2_fma();
    let mut out = vec![0f32; gate.len()];
    out.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(o, (g, u))| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: AVX2 and FMA were detected above.
                return unsafe { forward_avx2(g, u, o) };
            }
            let _ = avx2;
            forward_values(g, u, o)
        });
    out
}

/// [`backward_values`], in parallel chunks, with the fastest build this CPU runs.
fn backward(gate: &[f32], up: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let avx2 = has_avx2_fma();
    let (mut d_gate, mut d_up) = (vec![0f32; gate.len()], vec![0f32; gate.len()]);
    d_gate
        .par_chunks_mut(CHUNK)
        .zip(d_up.par_chunks_mut(CHUNK))
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .zip(dy.par_chunks(CHUNK))
        .for_each(|(((dg, du), (g, u)), y)| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: AVX2 and FMA were detected above.
                return unsafe { backward_avx2(g, u, y, dg, du) };
            }
            let _ = avx2;
            backward_values(g, u, y, dg, du)
        });
    (d_gate, d_up)
}

impl CustomOp2 for GatedGelu {
    fn name(&self) -> &'static str {
        "aginet-gated-gelu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let gate = contiguous_f32(s1, l1, "gated gelu")?;
        let up = contiguous_f32(s2, l2, "gated gelu")?;
        Ok((CpuStorage::F32(forward(gate, up)), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let shape = gate.shape();
        let (g, u, dy) = (flat_f32(gate)?, flat_f32(up)?, flat_f32(grad_res)?);
        let (d_gate, d_up) = backward(&g, &u, &dy);
        let device = gate.device();
        Ok((
            Some(Tensor::from_vec(d_gate, shape, device)?),
            Some(Tensor::from_vec(d_up, shape, device)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::weighted_backward;
    use candle_core::{Device, Var};

    #[test]
    fn gate_and_up_of_different_shapes_are_refused_naming_both() {
        let dev = Device::Cpu;
        let gate = Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
        let up = Tensor::zeros((3, 2), candle_core::DType::F32, &dev).unwrap();
        let err = gated_gelu(&gate, &up).unwrap_err().to_string();
        assert!(
            err.contains("gated gelu: gate [2, 3] and up [3, 2] differ"),
            "{err}"
        );
    }

    /// Forward and both gradients equal candle's `gelu(gate) * up` and its autograd, in both the
    /// scalar and the vectorised builds, including tails shorter than a vector.
    #[test]
    fn matches_candle_gelu_times_up_and_its_gradients() {
        let dev = Device::Cpu;
        for n in [1usize, 7, 8, 1000, CHUNK + 13] {
            let gate = Var::from_tensor(&(Tensor::randn(0f32, 3.0, n, &dev).unwrap())).unwrap();
            let up = Var::from_tensor(&Tensor::randn(0f32, 1.0, n, &dev).unwrap()).unwrap();
            let weights = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
            let ours = gated_gelu(gate.as_tensor(), up.as_tensor()).unwrap();
            let want = (gate.as_tensor().gelu().unwrap() * up.as_tensor()).unwrap();
            let close = |a: &Tensor, b: &Tensor, what: &str| {
                let (a, b) = (a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
                for (x, y) in a.iter().zip(&b) {
                    assert!(
                        (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                        "{what}: {x} vs {y}"
                    );
                }
            };
            close(&ours, &want, "forward");
            let ga = weighted_backward(&ours, &weights);
            let gb = weighted_backward(&want, &weights);
            for v in [&gate, &up] {
                close(
                    ga.get(v.as_tensor()).unwrap(),
                    gb.get(v.as_tensor()).unwrap(),
                    "gradient",
                );
            }
            // The portable loops agree with the vectorised ones.
            let (g, u) = (
                gate.as_tensor().to_vec1::<f32>().unwrap(),
                up.as_tensor().to_vec1::<f32>().unwrap(),
            );
            let mut scalar = vec![0f32; n];
            forward_values(&g, &u, &mut scalar);
            let fast = forward(&g, &u);
            for (a, b) in scalar.iter().zip(&fast) {
                assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }
}
