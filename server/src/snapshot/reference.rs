//! `reference.json` beside an exported adapter: what agiNet computes with it on the skill's
//! first held-out example, so whoever loads the export elsewhere can check they compute the
//! same. A decoder's logits over the tokens of prompt and completion; a classifier's class
//! logits of the image; an encoder's embedding of the query.

use crate::project::Project;
use aginet::format::config::Family;
use aginet::format::manifest::Manifest;
use aginet::format::tensors::NamedTensors;
use aginet::learn::score::{self, Skill};
use aginet::text::tokenizer::Tokenizer;
use anyhow::{Context, Result};
use serde_json::{json, Value};

/// Most logits a decoder's reference keeps: every position for a small vocabulary, the last
/// few otherwise.
const REFERENCE_VALUES: usize = 1 << 20;

/// The reference of the skill of `manifest` at global `version`, whose adapter is `factors`.
pub fn of(
    project: &Project,
    manifest: &Manifest,
    version: u64,
    factors: &NamedTensors,
) -> Result<Value> {
    let skill = &manifest.name;
    let base = project.base(skill);
    let held_out = project.held_out(skill);
    let text =
        std::fs::read_to_string(&held_out).with_context(|| format!("{}", held_out.display()))?;
    let first: aginet::text::data::Example =
        serde_json::from_str(text.lines().next().unwrap_or("{}"))
            .with_context(|| format!("{}: line 1", held_out.display()))?;
    let max = manifest.defaults.hyper.max_seq_len;
    let view = Skill {
        max_seq_len: max,
        batch_size: 1,
        ..Skill::of(manifest)
    };
    let tokenizer = || -> Result<Box<dyn Tokenizer>> {
        Ok(aginet::text::from_gguf(&aginet::format::gguf::Gguf::open(
            &base,
        )?)?)
    };
    let mut reference = json!({
        "skill": skill,
        "adapter_version": version,
        "base_sha256": manifest.base.sha256,
    });
    let computed = match manifest.architecture.family() {
        Family::Classifier => {
            let digit = aginet::task::digits::from_pair(&first.prompt, &first.completion)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{}: line 1", held_out.display()))?;
            let input = aginet::task::digits::example(&digit).input;
            let logits = score::class_logits(&base, &view, factors, &input)?;
            json!({"input": input, "label": digit.label, "logits": logits})
        }
        Family::Encoder => {
            let tok = tokenizer()?;
            let mut tokens = vec![tok.bos()];
            tokens.extend(tok.encode(&first.prompt));
            tokens.push(tok.eos());
            let embedding = score::embedding(&base, &view, factors, &tokens)?;
            json!({"text": first.prompt, "tokens": tokens, "embedding": embedding})
        }
        Family::Decoder => {
            let tok = tokenizer()?;
            let mut tokens = vec![tok.bos()];
            tokens.extend(tok.encode(&format!("{}{}", first.prompt, first.completion)));
            tokens.truncate(max);
            let logits = score::logits(&base, &view, factors, &tokens)?;
            let vocab = logits.first().map_or(1, Vec::len).max(1);
            let keep = (REFERENCE_VALUES / vocab).clamp(1, logits.len().max(1));
            let start = logits.len().saturating_sub(keep);
            json!({
                "tokens": tokens,
                "positions": (start..logits.len()).collect::<Vec<_>>(),
                "logits": &logits[start..],
            })
        }
    };
    let fields = reference.as_object_mut().expect("an object");
    fields.extend(computed.as_object().expect("an object").clone());
    Ok(reference)
}
