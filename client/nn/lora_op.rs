//! An adapted layer, `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ`, as one op with its own backward pass, on the
//! CPU.
//!
//! As candle ops the layer is the frozen product, the rank-wide product, its scaling, the
//! output-wide product and the sum, and autograd keeps the frozen output and the adapter's
//! output-wide term beside their sum until the backward pass: two output-sized tensors more
//! per adapted projection, per step. Here the graph holds one node over `x`, `A` and `B`; the
//! backward pass recomputes the rank-wide `x·Aᵀ` (rank × inputs multiply-adds per row, next to
//! nothing) and returns `∂x = ∂y·W + s·(∂y·B)·A`, `∂A = s·(∂y·B)ᵀ·x` and `∂B = s·∂yᵀ·(x·Aᵀ)`.

use crate::nn::frozen::FrozenLinear;
use crate::nn::storage::contiguous_f32;
use candle_core::{CpuStorage, CustomOp3, Device, Layout, Shape, Tensor};

/// The two low-rank factors of one adapted layer and their scale.
#[derive(Clone, Debug)]
pub struct LoraPair {
    /// Down-projection, rank × in.
    pub a: Tensor,
    /// Up-projection, out × rank.
    pub b: Tensor,
    /// `alpha / rank`.
    pub scale: f64,
}

/// `x·Wᵀ + s·(x·Aᵀ)·Bᵀ` for `x` (…, in) on the CPU; backpropagates into `x`, `A` and `B`.
pub(crate) fn adapted_forward(
    frozen: &FrozenLinear,
    lora: &LoraPair,
    x: &Tensor,
) -> candle_core::Result<Tensor> {
    let op = AdaptedLinear {
        frozen: frozen.clone(),
        scale: lora.scale,
    };
    x.contiguous()?
        .apply_op3(&lora.a.contiguous()?, &lora.b.contiguous()?, op)
}

/// The op behind [`adapted_forward`].
struct AdaptedLinear {
    frozen: FrozenLinear,
    scale: f64,
}

/// A tensor (outside the graph) over a copy of an op's contiguous f32 input.
fn tensor_of(storage: &CpuStorage, layout: &Layout) -> candle_core::Result<Tensor> {
    let values = contiguous_f32(storage, layout, "adapted linear")?;
    Tensor::from_slice(values, layout.shape(), &Device::Cpu)
}

/// `t` as a matrix of its last dimension's rows.
fn rows(t: &Tensor) -> candle_core::Result<Tensor> {
    let width = t.dim(candle_core::D::Minus1)?;
    t.reshape(((), width))
}

impl CustomOp3 for AdaptedLinear {
    fn name(&self) -> &'static str {
        "aginet-adapted-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, a, b) = (tensor_of(xs, xl)?, tensor_of(a_s, al)?, tensor_of(bs, bl)?);
        let x2 = rows(&x)?;
        let low = (x2.matmul(&a.t()?)? * self.scale)?;
        let y = (self.frozen.forward(&x2)? + low.matmul(&b.t()?)?)?;
        let mut dims = x.dims().to_vec();
        *dims.last_mut().expect("a matrix input") = y.dim(1)?;
        Ok((
            CpuStorage::F32(y.flatten_all()?.to_vec1()?),
            Shape::from(dims),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (x2, a, b) = (rows(&x.detach())?, a.detach(), b.detach());
        let g = rows(&grad_res.detach())?.contiguous()?;
        let gb = (g.matmul(&b)? * self.scale)?;
        let dx = (self.frozen.input_gradient(&g)? + gb.matmul(&a)?)?;
        let da = gb.t()?.matmul(&x2)?;
        let db = (g.t()?.matmul(&x2.matmul(&a.t()?)?)? * self.scale)?;
        Ok((Some(dx.reshape(x.shape())?), Some(da), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use crate::nn::frozen::{FrozenLinear, FrozenMode};
    use crate::nn::lora::{LoraLinear, LoraPair};
    use crate::test_util::{max_abs_diff, weighted_backward};
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor, Var};

    /// Equals the layer written with candle's ops, output and the gradients of `x`, `A` and
    /// `B`, over a quantized and a dense frozen weight.
    #[test]
    fn matches_the_composite_layer_and_its_gradients() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.2, (48, 64), &dev).unwrap();
        let frozen = [
            FrozenLinear::quantized(
                QTensor::quantize(&w, GgmlDType::Q8_0).unwrap(),
                FrozenMode::default(),
            )
            .unwrap(),
            FrozenLinear::dense(w.clone()),
        ];
        let var = |shape: (usize, usize)| {
            Var::from_tensor(&Tensor::randn(0f32, 0.5, shape, &dev).unwrap()).unwrap()
        };
        for frozen in frozen {
            // 3 × 7 rows: enough for the dequantized forward (from 16 rows on).
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 7, 64), &dev).unwrap()).unwrap();
            let (a, b) = (var((4, 64)), var((48, 4)));
            let pair = LoraPair {
                a: a.as_tensor().clone(),
                b: b.as_tensor().clone(),
                scale: 0.75,
            };
            let ours = super::adapted_forward(&frozen, &pair, &x).unwrap();
            let want = LoraLinear::new(frozen.clone(), Some(pair))
                .composite_forward(&x)
                .unwrap();
            assert_eq!(ours.dims(), &[3, 7, 48]);
            assert!(max_abs_diff(&ours, &want) < 1e-5, "forward");
            let weights = Tensor::randn(0f32, 1.0, (3, 7, 48), &dev).unwrap();
            let (ga, gb) = (
                weighted_backward(&ours, &weights),
                weighted_backward(&want, &weights),
            );
            for v in [&x, &a, &b] {
                let v = v.as_tensor();
                let diff = max_abs_diff(ga.get(v).unwrap(), gb.get(v).unwrap());
                assert!(diff < 1e-4, "gradient differs by {diff}");
            }
        }
    }
}
