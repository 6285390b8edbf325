//! What every decoder offers the training and generation code (`Decoder`, `Incremental`), the
//! shared head-and-loss step, and how a base's frozen weights are held (`WeightMode`).

use crate::nn::frozen::FrozenMode;
use crate::nn::lora::LoraLinear;
use crate::nn::model::kv_cache::KvCache;
use candle_core::Tensor;

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

/// A decoder that extends sequences one token at a time from a [`KvCache`]: what
/// makes greedy generation cost one token's computation per step instead of the whole
/// sequence's.
pub trait Incremental {
    /// Final-normed hidden states (batch, seq, width) of right-padded prompts (batch, seq)
    /// whose rows hold `lens` real tokens, and the cache of their keys and values.
    fn prefill(&self, tokens: &Tensor, lens: &[usize]) -> candle_core::Result<(Tensor, KvCache)>;

    /// Final-normed hidden states (batch, 1, width) of one new token per row (batch, 1), each
    /// following its row in `cache`, which gains them.
    fn extend(&self, tokens: &Tensor, cache: &mut KvCache) -> candle_core::Result<Tensor>;
}

/// [`Decoder::nll_rows`] for a model whose head is `head`: on the CPU with a frozen head, the
/// fused head-and-loss pass that never holds the full logits ([`crate::nn::head_loss`]); else the
/// logits, a log-softmax and the targets' entries.
pub(crate) fn head_nll_rows(
    head: &LoraLinear,
    hidden: &Tensor,
    targets: &Tensor,
) -> candle_core::Result<Tensor> {
    if !head.is_adapted() && !crate::nn::device::generic_ops(hidden.device()) {
        return crate::nn::head_loss::nll_rows(head.frozen(), hidden, &targets.to_vec1::<u32>()?);
    }
    let logp = candle_nn::ops::log_softmax(&head.forward(hidden)?, candle_core::D::Minus1)?;
    logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()
}

/// How a base's frozen weights are held while training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightMode {
    /// As shipped, quantized; gradients pass through them and products are computed as the
    /// mode says.
    Quantized(FrozenMode),
    /// Dequantized to f32 with plain autograd: the reference the quantized path is checked against.
    DenseF32,
}
