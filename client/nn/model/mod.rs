//! The skills' architectures, which train LoRA adapters over a frozen GGUF base: decoders
//! (llama, Gemma 3) behind [`Decoder`] (built by [`load`]), the vision skill's classifier ([`mlp`]) and the memory
//! skill's sentence encoder ([`bert`]).

mod attention;
pub mod bert;
pub mod decoder;
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
use candle_core::Device;
pub use decoder::{Decoder, Incremental, WeightMode};

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
