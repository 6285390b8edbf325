//! A global adapter in PEFT's format: `adapter_config.json` and `adapter_model.safetensors`
//! under PEFT's module names for a Hugging Face llama
//! (`base_model.model.model.layers.<i>.self_attn.q_proj.lora_A.weight`, …), so `PeftModel`
//! loads it onto the base as transformers reads the GGUF.
//!
//! The vision classifier has no Hugging Face class; its modules are named as its GGUF tensors
//! (`blk.<i>.ffn`, `output`, each a `torch.nn.Linear`), so the export is PEFT's format for a
//! PyTorch module tree of those names (`base_model.model.blk.0.ffn.lora_A.weight`, task type
//! none). `docs/formats.md#snapshot` describes that tree.
//!
//! GGUF stores the query and key rows of each head interleaved for rotary embedding
//! (llama.cpp permutes them when converting); transformers undoes that permutation when it
//! loads a GGUF, so the B factors of `attn_q` and `attn_k`, whose rows are those outputs, are
//! un-permuted the same way here (llama only: llama.cpp leaves Gemma 3's rows in Hugging
//! Face's order, as Gemma rotates halves, not pairs). A factors (inputs) and every other B are copied as they are.
//! PEFT scales by `lora_alpha / r`, as agiNet does.
//!
//! Beside them, `reference.json` holds agiNet's logits for a fixed prompt with this adapter, so
//! whoever loads the export can check they compute what agiNet computes.

use aginet::format::adapter::{a_name, b_name, Adapter, LoraSpec, Site};
use aginet::format::config::{Architecture, Family};
use aginet::nn::model::mlp;
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

/// PEFT's module path and target name for a GGUF site of a decoder
/// (`blk.3.attn_q` → `model.layers.3.self_attn.q_proj`, target `q_proj`), of the encoder
/// (`blk.3.ffn_down` → `encoder.layer.3.output.dense`, the whole path as its target, since BERT
/// has several modules named `dense`) or of the classifier (`blk.3.ffn` as it is, target `ffn`).
fn module(site: &str, architecture: &Architecture) -> Result<(String, String)> {
    if let Architecture::Bert(_) = architecture {
        let path = bert_module(site)?;
        return Ok((path.clone(), path));
    }
    if let Architecture::Mlp(_) = architecture {
        let name = if site == mlp::HEAD_TARGET {
            mlp::HEAD_TARGET
        } else if site.ends_with(&format!(".{}", mlp::LAYER_TARGET)) {
            mlp::LAYER_TARGET
        } else {
            bail!("site {site:?} has no PEFT name");
        };
        return Ok((site.to_string(), name.to_string()));
    }
    if site == "output" {
        return Ok(("lm_head".into(), "lm_head".into()));
    }
    let Some((layer, target)) = site
        .strip_prefix("blk.")
        .and_then(|rest| rest.split_once('.'))
    else {
        bail!("site {site:?} has no PEFT name");
    };
    let (group, name) = match target {
        "attn_q" => ("self_attn", "q_proj"),
        "attn_k" => ("self_attn", "k_proj"),
        "attn_v" => ("self_attn", "v_proj"),
        "attn_output" => ("self_attn", "o_proj"),
        "ffn_gate" => ("mlp", "gate_proj"),
        "ffn_up" => ("mlp", "up_proj"),
        "ffn_down" => ("mlp", "down_proj"),
        _ => bail!("site {site:?} has no PEFT name"),
    };
    Ok((
        format!("model.layers.{layer}.{group}.{name}"),
        name.to_string(),
    ))
}

/// Hugging Face's BertModel path of an encoder site (`blk.0.attn_q` → `encoder.layer.0.attention.self.query`).
fn bert_module(site: &str) -> Result<String> {
    let Some((layer, target)) = site
        .strip_prefix("blk.")
        .and_then(|rest| rest.split_once('.'))
    else {
        bail!("site {site:?} has no PEFT name");
    };
    let module = match target {
        "attn_q" => "attention.self.query",
        "attn_k" => "attention.self.key",
        "attn_v" => "attention.self.value",
        "attn_output" => "attention.output.dense",
        "ffn_up" => "intermediate.dense",
        "ffn_down" => "output.dense",
        _ => bail!("site {site:?} has no PEFT name"),
    };
    Ok(format!("encoder.layer.{layer}.{module}"))
}

/// Rows of a rotary projection in Hugging Face's order: within each head of `head_dim` rows,
/// GGUF row `2j + t` becomes row `t·head_dim/2 + j`.
fn unpermute_rows(values: &[f32], rows: usize, cols: usize, head_dim: usize) -> Vec<f32> {
    let half = head_dim / 2;
    let mut out = vec![0f32; values.len()];
    for row in 0..rows {
        let (head, within) = (row / head_dim, row % head_dim);
        let (j, t) = (within / 2, within % 2);
        let to = head * head_dim + t * half + j;
        out[to * cols..(to + 1) * cols].copy_from_slice(&values[row * cols..(row + 1) * cols]);
    }
    out
}

/// The head size whose rotary rows GGUF interleaves for `architecture`, if it does.
fn interleaved_head_dim(architecture: &Architecture) -> Option<usize> {
    match architecture {
        Architecture::Llama(dims) => Some(dims.head_dim()),
        Architecture::Gemma3(_) | Architecture::Mlp(_) | Architecture::Bert(_) => None,
    }
}

/// Writes `adapter` (over a base of `architecture`) as a PEFT adapter into `dir`.
pub fn export(
    adapter: &Adapter,
    sites: &[Site],
    architecture: &Architecture,
    lora: &LoraSpec,
    base_name: &str,
    dir: &Path,
) -> Result<()> {
    let interleaved = interleaved_head_dim(architecture);
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut modules = Vec::new();
    for site in sites {
        let (path, name) = module(&site.name, architecture)?;
        if !modules.contains(&name) {
            modules.push(name.clone());
        }
        for (factor, ours) in [
            ("lora_A", a_name(&site.name)),
            ("lora_B", b_name(&site.name)),
        ] {
            let t = adapter
                .tensors
                .get(&ours)
                .with_context(|| format!("the adapter lacks {ours}"))?;
            let shape = t.dims().to_vec();
            let mut values = t.flatten_all()?.to_vec1::<f32>()?;
            if let Some(head_dim) = interleaved {
                if factor == "lora_B" && (name == "q_proj" || name == "k_proj") {
                    values = unpermute_rows(&values, shape[0], shape[1], head_dim);
                }
            }
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            buffers.push((
                format!("base_model.model.{path}.{factor}.weight"),
                shape,
                bytes,
            ));
        }
    }
    let views = buffers
        .iter()
        .map(|(n, shape, bytes)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = safetensors::serialize(views, Some(metadata))?;
    aginet::format::files::write_atomic(&dir.join("adapter_model.safetensors"), &weights)?;
    let config = json!({
        "peft_type": "LORA",
        "task_type": match architecture.family() {
            Family::Decoder => json!("CAUSAL_LM"),
            Family::Encoder => json!("FEATURE_EXTRACTION"),
            Family::Classifier => json!(null),
        },
        "base_model_name_or_path": base_name,
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "target_modules": modules,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "use_rslora": false,
        "use_dora": false,
        "init_lora_weights": true,
        "modules_to_save": null,
    });
    aginet::format::files::write_atomic(
        &dir.join("adapter_config.json"),
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_peft() {
        let manifest = aginet::format::manifest::Manifest::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"),
            "tiny",
        )
        .unwrap();
        let llama = &manifest.architecture;
        assert_eq!(
            module("blk.3.attn_q", llama).unwrap(),
            ("model.layers.3.self_attn.q_proj".into(), "q_proj".into())
        );
        assert_eq!(
            module("blk.0.ffn_down", llama).unwrap().0,
            "model.layers.0.mlp.down_proj"
        );
        assert_eq!(module("output", llama).unwrap().0, "lm_head");
        assert!(module("blk.0.attn_norm", llama).is_err());

        let classifier = Architecture::Mlp(mlp::MlpConfig {
            n_input: 64,
            n_hidden: 8,
            n_layer: 2,
            n_class: 10,
        });
        assert_eq!(
            module("blk.1.ffn", &classifier).unwrap(),
            ("blk.1.ffn".into(), "ffn".into())
        );
        assert_eq!(
            module("output", &classifier).unwrap(),
            ("output".into(), "output".into())
        );
        assert!(module("blk.1.attn_q", &classifier).is_err());

        let encoder = Architecture::Bert(aginet::nn::model::bert::BertDims {
            n_layer: 6,
            n_embd: 384,
            n_head: 12,
            n_ff: 1536,
            n_vocab: 30522,
            n_ctx: 512,
        });
        for (site, path) in [
            ("blk.0.attn_q", "encoder.layer.0.attention.self.query"),
            (
                "blk.2.attn_output",
                "encoder.layer.2.attention.output.dense",
            ),
            ("blk.5.ffn_up", "encoder.layer.5.intermediate.dense"),
            ("blk.5.ffn_down", "encoder.layer.5.output.dense"),
        ] {
            assert_eq!(module(site, &encoder).unwrap(), (path.into(), path.into()));
        }
        assert!(module("output", &encoder).is_err());
    }

    #[test]
    fn rotary_rows_are_unpermuted_per_head() {
        // Two heads of dimension 4, one column: GGUF rows [a0 b0 a1 b1 | ...] → HF [a0 a1 b0 b1 | ...].
        let gguf = [0., 2., 1., 3., 4., 6., 5., 7.];
        assert_eq!(
            unpermute_rows(&gguf, 8, 1, 4),
            [0., 1., 2., 3., 4., 5., 6., 7.]
        );
    }
}
