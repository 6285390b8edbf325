//! Decoder architectures that train LoRA adapters over a frozen GGUF base.

pub mod gemma3;
pub mod llama;
pub mod rope;
mod shared;
pub mod tiny;

use crate::frozen::BackwardMode;

/// How a base's frozen weights are held while training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightMode {
    /// As shipped, quantized; gradients pass through them as the mode says.
    Quantized(BackwardMode),
    /// Dequantized to f32 with plain autograd: the reference the quantized path is checked against.
    DenseF32,
}
