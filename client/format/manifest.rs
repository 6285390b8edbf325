//! Skill manifests: `models/<skill>/manifest.toml` says what a skill trains and how.
//!
//! The server reads a manifest to make work; the app never sees it, only the `config` the
//! server derives from it ([`Manifest::work_config`]). See `docs/formats.md#manifest`.

use crate::error::{Error, Result};
use crate::format::adapter::LoraSpec;
use crate::format::arch::{BackwardMode, Products};
use crate::format::config::{Architecture, Hyper, WorkConfig, CONFIG_FORMAT, CONFIG_VERSION};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest's `format` value.
pub const MANIFEST_FORMAT: &str = "aginet-skill";
/// The manifest version this build reads.
pub const MANIFEST_VERSION: u32 = 1;

/// A skill manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Always [`MANIFEST_VERSION`].
    pub version: u32,
    /// Skill name; also its folder under `models/`.
    pub name: String,
    /// One line for operators.
    pub description: String,
    /// The GGUF base.
    pub base: BaseSpec,
    /// Architecture and dimensions of the base.
    pub architecture: Architecture,
    /// Where adapters go.
    pub lora: LoraSpec,
    /// The task: data and loss.
    pub task: TaskSpec,
    /// How results are scored.
    pub reward: RewardSpec,
    /// Defaults for work units.
    pub defaults: Defaults,
    /// The server optimizer `aggregate` uses for this skill unless told otherwise (absent:
    /// FedAvg at η 1), chosen per skill from the learning benchmark (`docs/learning.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerDefaults>,
}

/// The server optimizer a skill aggregates with by default. The names are the server's
/// (`aggregate --strategy`); the server checks them when it reads the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerDefaults {
    /// Strategy name (`fedavg`, `fedavgm`, `fedadam`, `fedyogi`, `diloco`).
    pub strategy: String,
    /// Server learning rate η (absent: the strategy's own default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_lr: Option<f32>,
}

/// The base file of a skill.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSpec {
    /// File name, relative to the manifest's folder.
    pub file: String,
    /// Its sha256.
    pub sha256: String,
    /// How to make or fetch it.
    pub recipe: String,
}

/// The task a skill trains on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Task name (e.g. `reverse`).
    pub kind: String,
    /// Data format of the shards (`prompt_completion_jsonl`).
    pub data: String,
    /// Loss (`completion_nll`).
    pub loss: String,
    /// Examples in the training pool that work units draw their shards from.
    #[serde(default = "default_pool")]
    pub pool: usize,
    /// Examples in the server's held-out set (disjoint from the pool).
    #[serde(default = "default_held_out")]
    pub held_out: usize,
    /// Training examples per work unit, when this skill needs another number than the
    /// project's `[work] shard_size` (an 8×8 image is far cheaper than a sentence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_size: Option<usize>,
    /// Eval examples per work unit, when this skill needs another number than the project's
    /// `[work] eval_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_size: Option<usize>,
}

fn default_pool() -> usize {
    4096
}

fn default_held_out() -> usize {
    128
}

/// The reward of a skill.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardSpec {
    /// Reward kind (`token_likelihood`).
    pub kind: String,
    /// Lowest reward the validator accepts.
    pub threshold: f64,
}

/// Work-unit defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Optimizer steps per work unit.
    pub steps: u32,
    /// Seed of the initial adapter.
    pub adapter_seed: u64,
    /// How gradients pass through the base.
    pub backward: BackwardMode,
    /// How the products with the frozen base are computed (`f32` when absent).
    #[serde(default)]
    pub products: Products,
    /// Optimizer and batching.
    pub hyper: Hyper,
}

impl Manifest {
    /// Reads and checks a manifest file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: toml::Value =
            toml::from_str(&text).map_err(|e| Error::config(path, e.to_string()))?;
        let json = serde_json::to_value(&value).map_err(|e| Error::config(path, e.to_string()))?;
        crate::format::tensors::check_format_version(&json, MANIFEST_FORMAT, MANIFEST_VERSION)
            .map_err(|m| Error::config(path, m))?;
        let manifest: Self =
            toml::from_str(&text).map_err(|e| Error::config(path, e.to_string()))?;
        manifest.check().map_err(|m| Error::config(path, m))?;
        Ok(manifest)
    }

    /// Checks the architecture's dimensions, and that the task's data, loss and reward are the
    /// ones the architecture computes.
    fn check(&self) -> std::result::Result<(), String> {
        self.architecture.check()?;
        let family = self.architecture.family();
        let wanted = [
            (
                "task.data",
                self.task.data.as_str(),
                &["prompt_completion_jsonl"][..],
            ),
            ("task.loss", self.task.loss.as_str(), &[family.loss()][..]),
            (
                "reward.kind",
                self.reward.kind.as_str(),
                family.reward_kinds(),
            ),
        ];
        for (field, got, want) in wanted {
            if !want.contains(&got) {
                let names: Vec<String> = want.iter().map(|w| format!("{w:?}")).collect();
                return Err(format!(
                    "field {field} is {got:?}; a {} base computes {}",
                    family.name(),
                    names.join(" or ")
                ));
            }
        }
        Ok(())
    }

    /// The manifest of `skill` under `models_dir`.
    pub fn load(models_dir: &Path, skill: &str) -> Result<Self> {
        Self::read(&Self::path(models_dir, skill))
    }

    /// Where the manifest of `skill` lives.
    pub fn path(models_dir: &Path, skill: &str) -> PathBuf {
        models_dir.join(skill).join("manifest.toml")
    }

    /// A work unit's config from the defaults, with the given seed and adapter version.
    pub fn work_config(&self, seed: u64, adapter_version: u64) -> WorkConfig {
        WorkConfig {
            format: CONFIG_FORMAT.into(),
            version: CONFIG_VERSION,
            skill: self.name.clone(),
            architecture: self.architecture.clone(),
            base_sha256: self.base.sha256.clone(),
            adapter_version,
            adapter_seed: self.defaults.adapter_seed,
            seed,
            steps: self.defaults.steps,
            lora: self.lora.clone(),
            hyper: self.defaults.hyper.clone(),
            backward: self.defaults.backward,
            products: self.defaults.products,
            threads: None,
            reward: (self.reward.kind != self.architecture.family().reward_kinds()[0])
                .then(|| self.reward.kind.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
    }

    #[test]
    fn every_shipped_manifest_reads() {
        for skill in ["tiny", "language", "vision", "memory", "planner"] {
            let m = Manifest::load(&models(), skill).unwrap();
            assert_eq!(m.name, skill);
        }
    }

    #[test]
    fn a_loss_or_reward_the_architecture_does_not_compute_is_refused() {
        let text = std::fs::read_to_string(Manifest::path(&models(), "vision")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.toml");
        for (from, to, field) in [
            (
                "loss = \"cross_entropy\"",
                "loss = \"completion_nll\"",
                "task.loss",
            ),
            (
                "kind = \"accuracy\"",
                "kind = \"token_likelihood\"",
                "reward.kind",
            ),
        ] {
            assert!(text.contains(from));
            std::fs::write(&path, text.replace(from, to)).unwrap();
            let e = Manifest::read(&path).unwrap_err().to_string();
            assert!(
                e.contains("manifest.toml") && e.contains(field) && e.contains("classifier"),
                "{e}"
            );
        }
    }
}
