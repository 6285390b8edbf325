//! The training checkpoint: everything needed to continue a run as if it had never stopped.
//!
//! safetensors with `param/<name>`, `adam_m/<name>` and `adam_v/<name>` for every trained factor,
//! and an `aginet` header ([`CheckpointHeader`], `format = "aginet-checkpoint"`, `version = 1`)
//! holding the step, the sampler, the loss curve so far and a key of the inputs it belongs to.
//! Written atomically, so a crash during the write leaves the previous checkpoint intact.

use crate::error::{Error, Result};
use crate::format::tensors::{self, NamedTensors};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The checkpoint's `format` value.
pub const CHECKPOINT_FORMAT: &str = "aginet-checkpoint";
/// The checkpoint version this build reads and writes.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Scalars of the training state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointHeader {
    /// Always [`CHECKPOINT_FORMAT`].
    pub format: String,
    /// Always [`CHECKPOINT_VERSION`].
    pub version: u32,
    /// sha256 over the work unit's inputs and the app version: a checkpoint of other inputs is ignored.
    pub inputs_key: String,
    /// Optimizer steps completed.
    pub step: u32,
    /// Data order state.
    pub sampler: SamplerState,
    /// Reward on the eval split before training.
    pub reward_before: f64,
    /// Training loss of every completed step.
    pub losses: Vec<f32>,
    /// Completion tokens trained on so far.
    pub tokens: u64,
    /// Wall time spent in earlier runs, seconds.
    pub elapsed_s: f64,
}

/// A full checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Scalars.
    pub header: CheckpointHeader,
    /// Trained factors by name.
    pub params: NamedTensors,
    /// AdamW first moments by name.
    pub m: NamedTensors,
    /// AdamW second moments by name.
    pub v: NamedTensors,
}

const GROUPS: [&str; 3] = ["param", "adam_m", "adam_v"];

impl Checkpoint {
    /// Writes the checkpoint to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut all = NamedTensors::new();
        for (group, map) in GROUPS.iter().zip([&self.params, &self.m, &self.v]) {
            for (name, t) in map {
                all.insert(format!("{group}/{name}"), t.clone());
            }
        }
        let bytes = tensors::encode(&all, &self.header)?;
        crate::format::files::write_atomic(path, &bytes)
    }

    /// Reads a checkpoint; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Self>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let (meta, all) = tensors::decode(&bytes).map_err(|m| Error::format(path, m))?;
        let header: CheckpointHeader =
            tensors::parse_header(&meta, CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
                .map_err(|m| Error::format(path, m))?;
        let mut groups = [
            NamedTensors::new(),
            NamedTensors::new(),
            NamedTensors::new(),
        ];
        for (name, t) in all {
            let (group, rest) = name
                .split_once('/')
                .ok_or_else(|| Error::format(path, format!("unexpected tensor {name}")))?;
            let idx = GROUPS
                .iter()
                .position(|g| *g == group)
                .ok_or_else(|| Error::format(path, format!("unexpected tensor {name}")))?;
            groups[idx].insert(rest.to_string(), t);
        }
        let [params, m, v] = groups;
        Ok(Some(Self {
            header,
            params,
            m,
            v,
        }))
    }
}

/// What a checkpoint keeps of the training sampler (`learn::sampler::Sampler`): its whole
/// state, so a resumed run draws the batches an uninterrupted one would.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerState {
    /// The seed the RNG started from.
    pub seed: u64,
    /// The RNG's position in its stream, in 32-bit words (decimal, as it needs 128 bits).
    pub rng_word_pos: String,
    /// The current epoch's permutation.
    pub order: Vec<u32>,
    /// Next index into `order`.
    pub cursor: usize,
    /// Epochs begun so far.
    pub epoch: u64,
}
