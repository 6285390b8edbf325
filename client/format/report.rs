//! The `report` result file: what the volunteer's run did and claims.
//!
//! JSON, `format = "aginet-report"`, `version = 2`. The validator trusts none of it: it checks
//! `delta_sha256` against the delta and recomputes the reward itself. See `docs/formats.md#report`.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The report's `format` value.
pub const REPORT_FORMAT: &str = "aginet-report";
/// The report version this build reads and writes.
pub const REPORT_VERSION: u32 = 2;

/// A run's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// Always [`REPORT_VERSION`].
    pub version: u32,
    /// Skill trained.
    pub skill: String,
    /// sha256 of the `delta` file's bytes.
    pub delta_sha256: String,
    /// sha256 of the base.
    pub base_sha256: String,
    /// Global adapter version trained from.
    pub adapter_version: u64,
    /// The work unit's seed (its number): names the eval split the server recomputes the
    /// claimed rewards on.
    pub seed: u64,
    /// Reward kind (`token_likelihood`).
    pub reward_kind: String,
    /// Reward on the work unit's eval split before training.
    pub reward_before: f64,
    /// Reward on the eval split after training.
    pub reward_after: f64,
    /// Training loss per step.
    pub loss_curve: Vec<f32>,
    /// Optimizer steps taken.
    pub steps: u32,
    /// Completion tokens trained on.
    pub tokens: u64,
    /// Wall time over all runs (interrupted ones included), seconds.
    pub wall_time_s: f64,
    /// Version of the app that produced the result.
    pub app_version: String,
    /// Worker threads used.
    pub threads: usize,
    /// `<arch>-<os>`, e.g. `x86_64-linux`.
    pub platform: String,
}

impl Report {
    /// Reads and checks a report file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = crate::format::files::read(path)?;
        Self::from_bytes(&bytes).map_err(|m| Error::format(path, m))
    }

    /// Parses and checks report bytes; the message names the problem for the caller to attach
    /// a path to.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        crate::format::tensors::check_format_version(&value, REPORT_FORMAT, REPORT_VERSION)?;
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// Writes the report atomically as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("report serializes");
        crate::format::files::write_atomic(path, format!("{json}\n").as_bytes())
    }
}
