//! Any bytes as a skill's GGUF base, as the app loads one: the header, metadata and tensor
//! table (`Gguf`), then, as far as the metadata allows, each family's configuration, the
//! tokenizer, and the model built from the tensors (their data read and checked). Every step
//! returns an error or a value; none may panic, hang, or allocate what the file's size does
//! not back.

use aginet::format::adapter::LoraSpec;
use aginet::format::config::Architecture;
use aginet::format::gguf::Gguf;
use aginet::format::tensors::NamedTensors;
use aginet::nn::frozen::FrozenMode;
use aginet::nn::model::{self, bert, gemma3, llama, mlp, ModelOptions, WeightMode};
use candle_core::Device;
use std::io::Cursor;
use std::path::Path;

/// The longest sequence the target asks a decoder to prepare for (its rotary tables).
const MAX_SEQ_LEN: usize = 64;

fn open(data: &[u8]) -> Option<Gguf> {
    Gguf::from_reader(Path::new("fuzz.gguf"), Box::new(Cursor::new(data.to_vec()))).ok()
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some(mut g) = open(data) else {
        return;
    };
    let _ = aginet::text::from_gguf(&g);
    let lora = LoraSpec::none();
    let factors = NamedTensors::new();
    let device = Device::Cpu;
    let weights = WeightMode::Quantized(FrozenMode::default());
    let opts = ModelOptions {
        weights,
        lora: &lora,
        factors: &factors,
        max_seq_len: MAX_SEQ_LEN,
        device: &device,
    };
    // The loaders read tensors at their own offsets, so one opened file serves each (and
    // `general.architecture` lets at most one configuration through).
    if let Ok(cfg) = llama::LlamaConfig::from_gguf(&g) {
        let _ = model::load(&Architecture::Llama(cfg), &mut g, &opts);
    }
    if let Ok(cfg) = gemma3::Gemma3Config::from_gguf(&g) {
        let _ = model::load(&Architecture::Gemma3(cfg.dims), &mut g, &opts);
    }
    if let Ok(cfg) = mlp::MlpConfig::from_gguf(&g) {
        let opts = mlp::MlpOptions {
            expected: &cfg,
            weights,
            lora: &lora,
            factors: &factors,
            device: &device,
        };
        let _ = mlp::MlpClassifier::from_gguf(&mut g, &opts);
    }
    if let Ok(dims) = bert::BertDims::from_gguf(&g) {
        let opts = bert::BertOptions {
            expected: &dims,
            weights,
            lora: &lora,
            factors: &factors,
            device: &device,
        };
        let _ = bert::BertEncoder::from_gguf(&mut g, &opts);
    }
}
