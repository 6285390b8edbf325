//! A linear layer for training: a frozen (usually quantized) weight plus an optional LoRA pair.
//!
//! `y = x·Wᵀ + (alpha / rank) · (x·Aᵀ)·Bᵀ` with `A` (rank × in) and `B` (out × rank). Which of `A`
//! and `B` are trained is decided by whoever builds the tensors (a `Var` is trained, a plain
//! tensor is not); this module only computes.

use crate::nn::frozen::FrozenLinear;
pub use crate::nn::lora_op::LoraPair;
use candle_core::Tensor;

/// A frozen linear layer with an optional LoRA adapter.
#[derive(Clone, Debug)]
pub struct LoraLinear {
    frozen: FrozenLinear,
    lora: Option<LoraPair>,
}

impl LoraLinear {
    /// A layer computing `x·Wᵀ`, plus the adapter's contribution when `lora` is given.
    pub fn new(frozen: FrozenLinear, lora: Option<LoraPair>) -> Self {
        Self { frozen, lora }
    }

    /// Applies the layer to `x` of shape (…, in). On the CPU an adapted layer is one op
    /// (`client/nn/lora_op.rs`); elsewhere it is written with candle's ops.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.lora {
            Some(l) if !crate::nn::device::generic_ops(x.device()) => {
                crate::nn::lora_op::adapted_forward(&self.frozen, l, x)
            }
            _ => self.composite_forward(x),
        }
    }

    /// [`LoraLinear::forward`] written with candle's ops.
    pub(crate) fn composite_forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.frozen.forward(x)?;
        match &self.lora {
            None => Ok(y),
            Some(l) => {
                // The scale goes on the rank-wide product, not the output-wide one: one
                // output-sized tensor fewer kept for the backward pass per adapted layer.
                let low = (x.broadcast_matmul(&l.a.t()?)? * l.scale)?;
                y + low.broadcast_matmul(&l.b.t()?)?
            }
        }
    }

    /// The frozen part of the layer.
    pub fn frozen(&self) -> &FrozenLinear {
        &self.frozen
    }

    /// Whether the layer carries an adapter.
    pub fn is_adapted(&self) -> bool {
        self.lora.is_some()
    }
}
