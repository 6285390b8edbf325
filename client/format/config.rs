//! The work unit's `config`: what to train, on what, for how long.
//!
//! JSON, `format = "aginet-config"`, `version = 1`; every field is required and unknown fields
//! are rejected, so a typo on the server is caught on the first volunteer rather than ignored.
//! See `docs/formats.md#config`.

use crate::error::{Error, Result};
use crate::format::adapter::LoraSpec;
use crate::format::adapter::Site;
use crate::format::arch::{BackwardMode, Products};
use crate::format::arch::{BertDims, Gemma3Dims, LlamaConfig, MlpConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The config's `format` value.
pub const CONFIG_FORMAT: &str = "aginet-config";
/// The config version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// Optimizer and batching settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hyper {
    /// Peak learning rate.
    pub lr: f64,
    /// Steps of linear warm-up from 0 to `lr`.
    pub warmup_steps: u32,
    /// Examples per optimizer step.
    pub batch_size: usize,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW first-moment decay.
    pub beta1: f64,
    /// AdamW second-moment decay.
    pub beta2: f64,
    /// AdamW denominator epsilon.
    pub eps: f64,
    /// Global gradient-norm clip (0 disables clipping).
    pub grad_clip: f64,
    /// Longest tokenized example accepted.
    pub max_seq_len: usize,
}

/// The work unit's config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkConfig {
    /// Always [`CONFIG_FORMAT`].
    pub format: String,
    /// Always [`CONFIG_VERSION`].
    pub version: u32,
    /// Skill name (`tiny`, `language`, …).
    pub skill: String,
    /// Architecture and dimensions the base must have.
    pub architecture: Architecture,
    /// sha256 of the `model` file.
    pub base_sha256: String,
    /// Version of the global adapter this work starts from (0: the initial adapter).
    pub adapter_version: u64,
    /// Seed of the initial adapter, shared by every volunteer of the skill.
    pub adapter_seed: u64,
    /// Seed of this work unit's data order.
    pub seed: u64,
    /// Optimizer steps to run.
    pub steps: u32,
    /// Where adapters go.
    pub lora: LoraSpec,
    /// Optimizer and batching.
    pub hyper: Hyper,
    /// How gradients pass through the quantized base.
    pub backward: BackwardMode,
    /// How the products with the frozen base are computed (`f32` when absent).
    #[serde(default, skip_serializing_if = "is_f32")]
    pub products: Products,
    /// Worker threads; `null` lets the host decide (BOINC's `ncpus`, or all cores).
    pub threads: Option<usize>,
    /// The reward the run reports when it is not the architecture's first kind (a decoder's
    /// `plan_success`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<String>,
}

/// The base architecture a skill trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Architecture {
    /// A llama-style decoder.
    Llama(LlamaConfig),
    /// Gemma 3's text decoder.
    Gemma3(Gemma3Dims),
    /// The vision skill's image classifier.
    Mlp(MlpConfig),
    /// The memory skill's sentence encoder.
    Bert(BertDims),
}

/// The reward kinds a report may carry (`report.reward_kind`, the manifest's `task.reward`);
/// `learn` computes each.
pub mod reward_kind {
    /// A decoder's likelihood of the held-out completions' tokens (`learn::eval`).
    pub const TOKEN_LIKELIHOOD: &str = "token_likelihood";
    /// A planner's share of held-out tasks its generated plans solve (`learn::plan`).
    pub const PLAN_SUCCESS: &str = "plan_success";
    /// A classifier's held-out accuracy (`learn::classify`).
    pub const ACCURACY: &str = "accuracy";
    /// An encoder's recall at 5 of held-out queries (`learn::retrieve`).
    pub const RECALL_AT_5: &str = "recall_at_5";
}

/// What a kind of network learns, which fixes its loss and its reward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Completions of prompts (llama, Gemma 3).
    Decoder,
    /// Classes of images (the MLP).
    Classifier,
    /// Embeddings that retrieve a query's passage (BERT).
    Encoder,
}

impl Family {
    /// The manifest's `task.loss` of this family.
    pub fn loss(self) -> &'static str {
        match self {
            Self::Decoder => "completion_nll",
            Self::Classifier => "cross_entropy",
            Self::Encoder => "in_batch_contrastive",
        }
    }

    /// The reward kinds this family can report and the validator recompute, its default
    /// first.
    pub fn reward_kinds(self) -> &'static [&'static str] {
        match self {
            Self::Decoder => &[reward_kind::TOKEN_LIKELIHOOD, reward_kind::PLAN_SUCCESS],
            Self::Classifier => &[reward_kind::ACCURACY],
            Self::Encoder => &[reward_kind::RECALL_AT_5],
        }
    }

    /// A name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Decoder => "decoder",
            Self::Classifier => "classifier",
            Self::Encoder => "encoder",
        }
    }
}

impl Architecture {
    /// The dimensions' range checks (`format::arch`); the error names the dimension.
    pub fn check(&self) -> std::result::Result<(), String> {
        match self {
            Self::Llama(a) => a.check(),
            Self::Gemma3(a) => a.check(),
            Self::Mlp(a) => a.check(),
            Self::Bert(a) => a.check(),
        }
        .map_err(|m| format!("architecture: {m}"))
    }

    /// Every adapted site for `targets`, in model order; an unknown target is an error message.
    pub fn sites(&self, targets: &[String]) -> std::result::Result<Vec<Site>, String> {
        match self {
            Self::Llama(a) => a.sites(targets),
            Self::Gemma3(a) => a.sites(targets),
            Self::Mlp(a) => a.sites(targets),
            Self::Bert(a) => a.sites(targets),
        }
    }

    /// Width of the output: the vocabulary of a decoder, the classes of a classifier.
    pub fn n_vocab(&self) -> usize {
        match self {
            Self::Llama(a) => a.n_vocab,
            Self::Gemma3(a) => a.n_vocab,
            Self::Mlp(a) => a.n_class,
            Self::Bert(a) => a.n_vocab,
        }
    }

    /// What the network learns.
    pub fn family(&self) -> Family {
        match self {
            Self::Llama(_) | Self::Gemma3(_) => Family::Decoder,
            Self::Mlp(_) => Family::Classifier,
            Self::Bert(_) => Family::Encoder,
        }
    }
}

impl WorkConfig {
    /// Reads and checks a config file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = crate::format::files::read(path)?;
        Self::parse(&bytes).map_err(|m| Error::config(path, m))
    }

    /// Parses and checks config bytes; the error is a message for the caller to attach a path to.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        crate::format::tensors::check_format_version(&value, CONFIG_FORMAT, CONFIG_VERSION)?;
        let config: Self = serde_json::from_value(value).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    /// Range checks serde cannot express.
    fn check(&self) -> std::result::Result<(), String> {
        self.architecture.check()?;
        let h = &self.hyper;
        let positive = [("hyper.lr", h.lr), ("hyper.eps", h.eps)];
        if let Some((name, v)) = positive.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err(format!("field {name} is {v}, expected a positive number"));
        }
        let unit = [("hyper.beta1", h.beta1), ("hyper.beta2", h.beta2)];
        if let Some((name, v)) = unit.iter().find(|(_, v)| !(0.0..1.0).contains(v)) {
            return Err(format!("field {name} is {v}, expected 0 <= value < 1"));
        }
        let non_negative = [
            ("hyper.weight_decay", h.weight_decay),
            ("hyper.grad_clip", h.grad_clip),
        ];
        if let Some((name, v)) = non_negative
            .iter()
            .find(|(_, v)| !(v.is_finite() && *v >= 0.0))
        {
            return Err(format!("field {name} is {v}, expected a number >= 0"));
        }
        let counts = [
            ("steps", self.steps as usize),
            ("hyper.batch_size", h.batch_size),
            ("hyper.max_seq_len", h.max_seq_len),
            ("lora.rank", self.lora.rank),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, v)| *v == 0) {
            return Err(format!("field {name} is 0, expected at least 1"));
        }
        if self.threads == Some(0) {
            return Err("field threads is 0, expected at least 1 or null".into());
        }
        if !(self.lora.alpha.is_finite() && self.lora.alpha > 0.0) {
            return Err(format!(
                "field lora.alpha is {}, expected a positive number",
                self.lora.alpha
            ));
        }
        if self.base_sha256.len() != 64 || !self.base_sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(format!(
                "field base_sha256 is {:?}, expected 64 hex digits",
                self.base_sha256
            ));
        }
        Ok(())
    }

    /// The config as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serializes")
    }
}

/// Whether `products` is the default, which configs leave out (so older configs keep their bytes).
fn is_f32(products: &Products) -> bool {
    *products == Products::F32
}
