//! The skills' architectures, which train LoRA adapters over a frozen GGUF base: decoders
//! (llama, Gemma 3) behind [`Decoder`], the vision skill's classifier ([`mlp`]) and the memory
//! skill's sentence encoder ([`bert`]).

mod attention;
pub mod bert;
pub mod gated_gelu;
pub mod gemma3;
pub mod kv_cache;
pub mod llama;
pub mod mlp;
pub mod rms_norm;
pub mod rope;
mod shared;
pub mod tiny;

use crate::error::Result;
use crate::format::adapter::LoraSpec;
use crate::format::config::Architecture;
use crate::format::gguf::Gguf;
use crate::format::tensors::NamedTensors;
use crate::nn::frozen::BackwardMode;
use crate::nn::lora::LoraLinear;
use candle_core::{Device, Tensor};

/// A decoder that trains: hidden states for every position, and the output head apart, so a
/// loss can run the head on the positions it counts only.
pub trait Decoder: Sync {
    /// Final-normed hidden states (batch, seq, width) for token ids (batch, seq).
    fn hidden(&self, tokens: &Tensor) -> candle_core::Result<Tensor>;

    /// Logits (…, vocab) of hidden states (…, width).
    fn head(&self, hidden: &Tensor) -> candle_core::Result<Tensor>;

    /// Per-row NLL (rows,) of `targets` (rows,) under the head's logits for `hidden`
    /// (rows, width).
    fn nll_rows(&self, hidden: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor>;

    /// Logits (batch, seq, vocab) for every position.
    fn forward(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        self.head(&self.hidden(tokens)?)
    }

    /// The same decoder continuing sequences from cached keys and values, if it can.
    fn incremental(&self) -> Option<&dyn Incremental> {
        None
    }
}

/// A decoder that extends sequences one token at a time from a [`kv_cache::KvCache`]: what
/// makes greedy generation cost one token's computation per step instead of the whole
/// sequence's.
pub trait Incremental {
    /// Final-normed hidden states (batch, seq, width) of right-padded prompts (batch, seq)
    /// whose rows hold `lens` real tokens, and the cache of their keys and values.
    fn prefill(
        &self,
        tokens: &Tensor,
        lens: &[usize],
    ) -> candle_core::Result<(Tensor, kv_cache::KvCache)>;

    /// Final-normed hidden states (batch, 1, width) of one new token per row (batch, 1), each
    /// following its row in `cache`, which gains them.
    fn extend(&self, tokens: &Tensor, cache: &mut kv_cache::KvCache)
        -> candle_core::Result<Tensor>;
}

/// [`Decoder::nll_rows`] for a model whose head is `head`: on the CPU with a frozen head, the
/// fused head-and-loss pass that never holds the full logits ([`crate::nn::head_loss`]); else the
/// logits, a log-softmax and the targets' entries.
pub(crate) fn head_nll_rows(
    head: &LoraLinear,
    hidden: &Tensor,
    targets: &Tensor,
) -> candle_core::Result<Tensor> {
    if !head.is_adapted() && hidden.device().is_cpu() {
        return crate::nn::head_loss::nll_rows(head.frozen(), hidden, &targets.to_vec1::<u32>()?);
    }
    let logp = candle_nn::ops::log_softmax(&head.forward(hidden)?, candle_core::D::Minus1)?;
    logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()
}

/// How a base's frozen weights are held while training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightMode {
    /// As shipped, quantized; gradients pass through them as the mode says.
    Quantized(BackwardMode),
    /// Dequantized to f32 with plain autograd: the reference the quantized path is checked against.
    DenseF32,
}

/// What building a decoder needs besides the GGUF file and the architecture.
pub struct ModelOptions<'a> {
    /// How frozen weights are held.
    pub weights: WeightMode,
    /// Which sites carry adapters.
    pub lora: &'a LoraSpec,
    /// The adapter factors by name (`Var`-backed ones are trained).
    pub factors: &'a NamedTensors,
    /// Longest sequence the model will see (sizes the rotary tables).
    pub max_seq_len: usize,
    /// Where the computation runs.
    pub device: &'a Device,
}

/// Builds the decoder `architecture` names from a GGUF base, checking the dimensions it pins.
pub fn load(
    architecture: &Architecture,
    g: &mut Gguf,
    opts: &ModelOptions<'_>,
) -> Result<Box<dyn Decoder>> {
    Ok(match architecture {
        Architecture::Llama(expected) => Box::new(llama::Llama::from_gguf(
            g,
            &llama::LoadOptions {
                expected,
                weights: opts.weights,
                lora: opts.lora,
                factors: opts.factors,
                max_seq_len: opts.max_seq_len,
                device: opts.device,
            },
        )?),
        Architecture::Gemma3(expected) => Box::new(gemma3::Gemma3::from_gguf(
            g,
            &gemma3::Gemma3Options {
                expected: Some(expected),
                weights: opts.weights,
                lora: opts.lora,
                factors: opts.factors,
                max_seq_len: opts.max_seq_len,
                device: opts.device,
            },
        )?),
        Architecture::Mlp(_) | Architecture::Bert(_) => {
            return Err(crate::Error::model(
                g.path(),
                format!(
                    "its architecture is an {}, not a decoder",
                    architecture.family().name()
                ),
            ))
        }
    })
}
