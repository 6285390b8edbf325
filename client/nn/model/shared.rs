//! What the decoders share: holding a frozen weight as the weight mode says, finding a site's
//! adapter factors, and the attention arithmetic after the projections and rotary embedding.

use crate::error::{Error, Result};
use crate::format::adapter::{a_name, b_name, LoraSpec, Site};
use crate::format::tensors::NamedTensors;
use crate::nn::frozen::FrozenLinear;
use crate::nn::lora::LoraPair;
use crate::nn::model::decoder::WeightMode;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor, D};

/// The output head of the decoders, adaptable too.
pub const HEAD_TARGET: &str = "output";

/// A frozen weight held as `mode` says: quantized, or dequantized to f32; always dequantized
/// where [`crate::nn::device::generic_ops`] holds (a GPU).
pub(crate) fn frozen(weight: QTensor, mode: WeightMode, device: &Device) -> Result<FrozenLinear> {
    Ok(match mode {
        // A GPU (or the CPU running the GPU's graph) holds the frozen weights dequantized.
        WeightMode::Quantized(_) if crate::nn::device::generic_ops(device) => {
            FrozenLinear::dense(weight.dequantize(device)?)
        }
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

/// The widths that fix the shape of every adaptable projection of a decoder.
pub(crate) struct Widths {
    /// Hidden size.
    pub n_embd: usize,
    /// Output width of the query projection (heads × head size).
    pub q: usize,
    /// Output width of the key and value projections.
    pub kv: usize,
    /// MLP inner size.
    pub n_ff: usize,
    /// Vocabulary size (the head's output).
    pub n_vocab: usize,
}

/// (out, in) of the projection `target` (a GGUF name, or the head `output`); `None` for an
/// unknown one.
pub(crate) fn projection_shape(w: &Widths, target: &str) -> Option<(usize, usize)> {
    Some(match target {
        "attn_q" => (w.q, w.n_embd),
        "attn_k" | "attn_v" => (w.kv, w.n_embd),
        "attn_output" => (w.n_embd, w.q),
        "ffn_gate" | "ffn_up" => (w.n_ff, w.n_embd),
        "ffn_down" => (w.n_embd, w.n_ff),
        HEAD_TARGET => (w.n_vocab, w.n_embd),
        _ => return None,
    })
}

/// Every adapted site for `targets` in model order (each block's projections in `block_targets`
/// order, then the head `head_target`), with `shape` giving a target's (out, in); an unknown
/// target is an error message naming the architecture's known ones.
pub(crate) fn sites(
    architecture: &str,
    n_layer: usize,
    targets: &[String],
    block_targets: &[&str],
    head_target: &str,
    shape: impl Fn(&str) -> Option<(usize, usize)>,
) -> std::result::Result<Vec<Site>, String> {
    if let Some(bad) = targets.iter().find(|t| shape(t).is_none()) {
        return Err(format!(
            "unknown LoRA target {bad:?}; {architecture} knows {block_targets:?} and {head_target:?}"
        ));
    }
    let site = |name: String, target: &str| {
        let (out, inp) = shape(target).expect("known target");
        Site { name, out, inp }
    };
    let mut out = Vec::new();
    for layer in 0..n_layer {
        for target in block_targets
            .iter()
            .filter(|t| targets.iter().any(|x| x == *t))
        {
            out.push(site(format!("blk.{layer}.{target}"), target));
        }
    }
    if targets.iter().any(|t| t == head_target) {
        out.push(site(head_target.to_string(), head_target));
    }
    Ok(out)
}

/// Softmax attention of queries `q` (batch, heads, seq, head_dim) over keys `k` and values `v`
/// with fewer (grouped) heads, scaled by 1/√head_dim, under `mask`; the heads concatenated back
/// into (batch, seq, heads · head_dim). One op with its own backward pass on the CPU
/// ([`super::attention`]), candle's ops elsewhere.
pub(crate) fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Mask,
) -> candle_core::Result<Tensor> {
    if !crate::nn::device::generic_ops(q.device()) {
        return super::attention::attention(q, k, v, mask.window);
    }
    attend_with(q, k, v, |scores, scale| {
        additive_softmax(scores, scale, &mask.additive)
    })
}

/// [`attend`] under an additive mask of 0 and −∞ that broadcasts against the scores (batch,
/// heads, queries, keys) and may differ per row, as a batch of sequences of different lengths
/// needs when each gains a token.
pub(crate) fn attend_additive(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    additive: &Tensor,
) -> candle_core::Result<Tensor> {
    attend_with(q, k, v, |scores, scale| {
        additive_softmax(scores, scale, additive)
    })
}

/// The attention arithmetic around `softmax`, which turns the raw scores and the scale
/// 1/√head_dim into the masked probabilities.
fn attend_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    softmax: impl FnOnce(Tensor, f64) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let (b, nh, t, hd) = q.dims4()?;
    let nkv = k.dim(1)?;
    let (k, v) = (repeat_kv(k, nh / nkv)?, repeat_kv(v, nh / nkv)?);
    let probs = softmax(q.matmul(&k.t()?)?, 1.0 / (hd as f64).sqrt())?;
    probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, nh * hd))
}

/// The softmax over keys of `scores · scale + additive`.
fn additive_softmax(scores: Tensor, scale: f64, additive: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::ops::softmax(&(scores * scale)?.broadcast_add(additive)?, D::Minus1)
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

/// Which keys each query sees: position `i` sees `j` when `j ≤ i` and `i − j < window` (a
/// causal mask when `window ≥ t`).
pub(crate) struct Mask {
    /// The window.
    window: usize,
    /// The same as a (t, t) additive mask (0 or −∞), for devices without the fused op.
    additive: Tensor,
}

impl Mask {
    /// The additive form.
    #[cfg(test)]
    pub(crate) fn additive(&self) -> &Tensor {
        &self.additive
    }
}

/// The mask of `t` positions with `window`.
pub(crate) fn mask(t: usize, window: usize, device: &Device) -> candle_core::Result<Mask> {
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
    Ok(Mask {
        window,
        additive: Tensor::from_vec(values, (t, t), device)?,
    })
}
