//! `convert-bert --in DIR --out GGUF`: a Hugging Face BERT sentence encoder (the folder
//! `models/minilm/fetch.sh` fills: `config.json`, `model.safetensors`, `vocab.txt`) as the
//! memory skill's GGUF base, under llama.cpp's BERT tensor names.
//!
//! The projection matrices and the word embedding are quantized to `quant` (Q8_0 for the skill;
//! F32 keeps the model exact, to check the architecture against the reference); the position and
//! token-type embeddings, the LayerNorms and every bias stay f32. The pooler is dropped
//! (sentence-transformers mean-pools the last hidden states and never uses it). The vocabulary
//! goes into `tokenizer.ggml.tokens` with `tokenizer.ggml.model = "bert"` (WordPiece).

use anyhow::{bail, Context, Result};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use safetensors::tensor::SafeTensors;
use serde::Deserialize;
use std::path::Path;

/// The fields of `config.json` the conversion reads.
#[derive(Deserialize)]
struct HfConfig {
    model_type: String,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    max_position_embeddings: usize,
    layer_norm_eps: f64,
    vocab_size: usize,
    type_vocab_size: usize,
    hidden_act: String,
}

/// The GGUF name of a Hugging Face BERT tensor, and whether it is quantized; `None` for one the
/// encoder does not use.
fn gguf_name(hf: &str) -> Option<(String, bool)> {
    let fixed = match hf {
        "embeddings.word_embeddings.weight" => Some(("token_embd.weight", true)),
        "embeddings.position_embeddings.weight" => Some(("position_embd.weight", false)),
        "embeddings.token_type_embeddings.weight" => Some(("token_types.weight", false)),
        "embeddings.LayerNorm.weight" => Some(("token_embd_norm.weight", false)),
        "embeddings.LayerNorm.bias" => Some(("token_embd_norm.bias", false)),
        _ => None,
    };
    if let Some((name, quantized)) = fixed {
        return Some((name.to_string(), quantized));
    }
    let rest = hf.strip_prefix("encoder.layer.")?;
    let (layer, part) = rest.split_once('.')?;
    let (module, kind) = part.rsplit_once('.')?;
    let target = match module {
        "attention.self.query" => "attn_q",
        "attention.self.key" => "attn_k",
        "attention.self.value" => "attn_v",
        "attention.output.dense" => "attn_output",
        "attention.output.LayerNorm" => "attn_output_norm",
        "intermediate.dense" => "ffn_up",
        "output.dense" => "ffn_down",
        "output.LayerNorm" => "layer_output_norm",
        _ => return None,
    };
    let quantized = kind == "weight" && !target.ends_with("_norm");
    Some((format!("blk.{layer}.{target}.{kind}"), quantized))
}

/// Converts the encoder in `input` and writes it to `output` with its matrices as `quant`;
/// returns the tensors written.
pub fn convert(input: &Path, output: &Path, quant: GgmlDType) -> Result<usize> {
    let config_path = input.join("config.json");
    let config: HfConfig = serde_json::from_slice(
        &std::fs::read(&config_path).with_context(|| format!("{}", config_path.display()))?,
    )
    .with_context(|| format!("{}: not a BERT config", config_path.display()))?;
    if config.model_type != "bert" || config.hidden_act != "gelu" {
        bail!(
            "{}: model_type {:?} with hidden_act {:?}; only BERT with GELU converts",
            config_path.display(),
            config.model_type,
            config.hidden_act
        );
    }
    let vocab_path = input.join("vocab.txt");
    let vocab: Vec<String> = std::fs::read_to_string(&vocab_path)
        .with_context(|| format!("{}", vocab_path.display()))?
        .lines()
        .map(str::to_string)
        .collect();
    if vocab.len() != config.vocab_size {
        bail!(
            "{}: {} tokens, config.json says {}",
            vocab_path.display(),
            vocab.len(),
            config.vocab_size
        );
    }

    let weights_path = input.join("model.safetensors");
    let bytes =
        std::fs::read(&weights_path).with_context(|| format!("{}", weights_path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", weights_path.display()))?;
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for hf in &names {
        let Some((name, quantized)) = gguf_name(hf) else {
            continue;
        };
        let t = aginet::format::tensors::f32_tensor(&st.tensor(hf)?)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: tensor {hf}", weights_path.display()))?;
        let dtype = if quantized { quant } else { GgmlDType::F32 };
        tensors.push((name, QTensor::quantize(&t, dtype)?));
    }
    let want = 5 + 16 * config.num_hidden_layers;
    if tensors.len() != want {
        bail!(
            "{}: {} encoder tensors, a {}-layer BERT has {want}",
            weights_path.display(),
            tensors.len(),
            config.num_hidden_layers
        );
    }

    use gguf_file::Value as V;
    let metadata = [
        ("general.architecture", V::String("bert".into())),
        ("general.name", V::String("all-MiniLM-L6-v2".into())),
        (
            "bert.context_length",
            V::U32(config.max_position_embeddings as u32),
        ),
        ("bert.embedding_length", V::U32(config.hidden_size as u32)),
        (
            "bert.feed_forward_length",
            V::U32(config.intermediate_size as u32),
        ),
        ("bert.block_count", V::U32(config.num_hidden_layers as u32)),
        (
            "bert.attention.head_count",
            V::U32(config.num_attention_heads as u32),
        ),
        (
            "bert.attention.layer_norm_epsilon",
            V::F32(config.layer_norm_eps as f32),
        ),
        ("bert.attention.causal", V::Bool(false)),
        // llama.cpp's pooling types: 1 is the mean.
        ("bert.pooling_type", V::U32(1)),
        ("tokenizer.ggml.model", V::String("bert".into())),
        // llama.cpp's BERT loader refuses a base without it (the rows of token_types.weight).
        (
            "tokenizer.ggml.token_type_count",
            V::U32(config.type_vocab_size as u32),
        ),
        (
            "tokenizer.ggml.tokens",
            V::Array(vocab.into_iter().map(V::String).collect()),
        ),
    ];
    let meta: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tmp = output.with_extension("gguf.tmp");
    let mut file = std::fs::File::create(&tmp).with_context(|| format!("{}", tmp.display()))?;
    gguf_file::write(&mut file, &meta, &refs)
        .with_context(|| format!("{}: writing GGUF", tmp.display()))?;
    file.sync_all()?;
    std::fs::rename(&tmp, output).with_context(|| format!("{}", output.display()))?;
    Ok(tensors.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_llama_cpp() {
        assert_eq!(
            gguf_name("encoder.layer.3.attention.self.query.weight"),
            Some(("blk.3.attn_q.weight".into(), true))
        );
        assert_eq!(
            gguf_name("encoder.layer.0.attention.output.LayerNorm.bias"),
            Some(("blk.0.attn_output_norm.bias".into(), false))
        );
        assert_eq!(
            gguf_name("encoder.layer.5.output.dense.bias"),
            Some(("blk.5.ffn_down.bias".into(), false))
        );
        assert_eq!(
            gguf_name("embeddings.word_embeddings.weight"),
            Some(("token_embd.weight".into(), true))
        );
        assert_eq!(gguf_name("pooler.dense.weight"), None);
        assert_eq!(gguf_name("embeddings.position_ids"), None);
    }
}
