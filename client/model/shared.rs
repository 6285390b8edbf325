//! What the decoders share: holding a frozen weight as the weight mode says, finding a site's
//! adapter factors, and the attention arithmetic after the projections and rotary embedding.

use crate::adapter::{a_name, b_name, LoraSpec};
use crate::error::{Error, Result};
use crate::frozen::FrozenLinear;
use crate::lora::LoraPair;
use crate::model::WeightMode;
use crate::tensors::NamedTensors;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor, D};

/// A frozen weight held as `mode` says: quantized, or dequantized to f32.
pub(crate) fn frozen(weight: QTensor, mode: WeightMode, device: &Device) -> Result<FrozenLinear> {
    Ok(match mode {
        WeightMode::Quantized(backward) => FrozenLinear::quantized(weight, backward)?,
        WeightMode::DenseF32 => FrozenLinear::dense(weight.dequantize(device)?),
    })
}

/// The adapter of `site` when `target` is one of the adapted targets; an error names a missing
/// factor.
pub(crate) fn lora_pair(
    lora: &LoraSpec,
    factors: &NamedTensors,
    site: &str,
    target: &str,
) -> Result<Option<LoraPair>> {
    if !lora.targets.iter().any(|t| t == target) {
        return Ok(None);
    }
    let get = |name: String| {
        factors.get(&name).cloned().ok_or_else(|| {
            Error::Tensor(candle_core::Error::Msg(format!(
                "adapter factor {name} is missing"
            )))
        })
    };
    Ok(Some(LoraPair {
        a: get(a_name(site))?,
        b: get(b_name(site))?,
        scale: lora.scale(),
    }))
}

/// Softmax attention of queries `q` (batch, heads, seq, head_dim) over keys `k` and values `v`
/// with fewer (grouped) heads, scaled by 1/√head_dim, with the additive `mask`; the heads
/// concatenated back into (batch, seq, heads · head_dim).
pub(crate) fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    let (b, nh, t, hd) = q.dims4()?;
    let nkv = k.dim(1)?;
    let (k, v) = (repeat_kv(k, nh / nkv)?, repeat_kv(v, nh / nkv)?);
    let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(mask)?;
    let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
    probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, nh * hd))
}

/// Repeats each key/value head `n` times so grouped heads line up with the query heads.
fn repeat_kv(x: &Tensor, n: usize) -> candle_core::Result<Tensor> {
    if n == 1 {
        return Ok(x.clone());
    }
    let (b, h, t, d) = x.dims4()?;
    x.unsqueeze(2)?
        .broadcast_as((b, h, n, t, d))?
        .contiguous()?
        .reshape((b, h * n, t, d))
}

/// (t, t) additive mask: position `i` sees `j` when `j ≤ i` and `i − j < window` (a causal mask
/// when `window ≥ t`).
pub(crate) fn mask(t: usize, window: usize, device: &Device) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..t).map(move |j| {
                if j > i || i - j >= window {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(values, (t, t), device)
}
