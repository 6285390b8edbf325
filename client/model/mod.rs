//! Decoder architectures that train LoRA adapters over a frozen GGUF base.

pub mod gemma3;
pub mod llama;
pub mod rope;
mod shared;
pub mod tiny;

use crate::frozen::BackwardMode;
use candle_core::Tensor;

/// A decoder that trains: hidden states for every position, and the output head apart, so a
/// loss can run the head on the positions it counts only.
pub trait Decoder {
    /// Final-normed hidden states (batch, seq, width) for token ids (batch, seq).
    fn hidden(&self, tokens: &Tensor) -> candle_core::Result<Tensor>;

    /// Logits (…, vocab) of hidden states (…, width).
    fn head(&self, hidden: &Tensor) -> candle_core::Result<Tensor>;

    /// Logits (batch, seq, vocab) for every position.
    fn forward(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        self.head(&self.hidden(tokens)?)
    }
}

/// How a base's frozen weights are held while training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightMode {
    /// As shipped, quantized; gradients pass through them as the mode says.
    Quantized(BackwardMode),
    /// Dequantized to f32 with plain autograd: the reference the quantized path is checked against.
    DenseF32,
}
