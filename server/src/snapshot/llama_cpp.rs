//! A decoder's or the encoder's global adapter as a llama.cpp LoRA adapter, `adapter.gguf`: what llama.cpp and
//! everything built on it (ollama, LM Studio, llama-cpp-python, node-llama-cpp) loads beside the
//! base GGUF (`llama-cli -m BASE --lora adapter.gguf`).
//!
//! llama.cpp's adapter format: `general.type = "adapter"`, `adapter.type = "lora"`,
//! `adapter.lora.alpha`, `general.architecture` as the base's, and for each adapted weight
//! `<name>.weight.lora_a` (rank × in, GGUF dims `[in, rank]`) and `<name>.weight.lora_b`
//! (out × rank, `[rank, out]`). llama.cpp scales by `alpha / rank` as agiNet does. The factors
//! are agiNet's own, in the GGUF's row order (no un-permutation: both sides use the GGUF's
//! layout), stored as f32.

use aginet::format::adapter::{a_name, b_name, Adapter, LoraSpec, Site};
use aginet::format::config::Architecture;
use aginet::format::gguf::Gguf;
use anyhow::{bail, Context, Result};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use std::path::Path;

/// The file name of the export, beside the PEFT files.
pub const FILE: &str = "adapter.gguf";

/// `general.architecture` of a base llama.cpp knows (the decoders and the BERT encoder), `None`
/// for the classifier.
pub fn architecture_name(architecture: &Architecture) -> Option<&'static str> {
    match architecture {
        Architecture::Llama(_) => Some("llama"),
        Architecture::Gemma3(_) => Some("gemma3"),
        // llama.cpp's BERT graph routes q, k, v, the attention output and the MLP through its
        // LoRA-aware products too.
        Architecture::Bert(_) => Some("bert"),
        Architecture::Mlp(_) => None,
    }
}

/// Writes `adapter` over `base` (of `architecture`) as `dir/adapter.gguf`. Fails when a
/// site has no weight of its name in the base (a head tied to the embeddings), which llama.cpp
/// could not attach the adapter to.
pub fn export(
    adapter: &Adapter,
    sites: &[Site],
    architecture: &Architecture,
    lora: &LoraSpec,
    base: &Gguf,
    dir: &Path,
) -> Result<()> {
    let Some(arch) = architecture_name(architecture) else {
        bail!(
            "llama.cpp adapters are for decoders, not a {}",
            architecture.family().name()
        );
    };
    let mut tensors = Vec::with_capacity(2 * sites.len());
    for site in sites {
        let weight = format!("{}.weight", site.name);
        if !base.has_tensor(&weight) {
            bail!(
                "{}: no tensor {weight} to attach the adapter's {} to",
                base.path().display(),
                site.name
            );
        }
        for (ours, theirs) in [
            (a_name(&site.name), format!("{weight}.lora_a")),
            (b_name(&site.name), format!("{weight}.lora_b")),
        ] {
            let t = adapter
                .tensors
                .get(&ours)
                .with_context(|| format!("the adapter lacks {ours}"))?;
            tensors.push((theirs, QTensor::quantize(t, GgmlDType::F32)?));
        }
    }
    use gguf_file::Value as V;
    let metadata = [
        ("general.type", V::String("adapter".into())),
        ("general.architecture", V::String(arch.into())),
        ("adapter.type", V::String("lora".into())),
        ("adapter.lora.alpha", V::F32(lora.alpha as f32)),
    ];
    let meta: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut bytes = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut bytes, &meta, &refs).context("writing the llama.cpp adapter")?;
    aginet::format::files::write_atomic(&dir.join(FILE), bytes.get_ref())?;
    Ok(())
}
