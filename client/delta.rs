//! The `delta` result file: how the trained adapter differs from the one the work unit started
//! from, for every trained factor.
//!
//! A zstd frame (level 19, no checksum flag, so equal tensors give equal bytes) around
//! safetensors holding `<site>.lora_b` (and `<site>.lora_a` when A is trained) as f32, with an
//! `aginet` header ([`DeltaHeader`], `format = "aginet-delta"`, `version = 1`). See
//! `docs/formats.md#delta`.

use crate::adapter::LoraSpec;
use crate::error::{Error, Result};
use crate::tensors::{self, NamedTensors};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The delta's `format` value.
pub const DELTA_FORMAT: &str = "aginet-delta";
/// The delta version this build reads and writes.
pub const DELTA_VERSION: u32 = 1;
/// zstd level: deltas are small and written once, so favour size.
const ZSTD_LEVEL: i32 = 19;
/// Largest decompressed delta a reader accepts (a guard against zstd bombs).
const MAX_DECOMPRESSED: usize = 1 << 30;

/// What a delta is a delta of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaHeader {
    /// Always [`DELTA_FORMAT`].
    pub format: String,
    /// Always [`DELTA_VERSION`].
    pub version: u32,
    /// Skill trained.
    pub skill: String,
    /// sha256 of the base.
    pub base_sha256: String,
    /// Global adapter version the training started from.
    pub adapter_version: u64,
    /// Shape of the adapter.
    pub lora: LoraSpec,
    /// Optimizer steps taken.
    pub steps: u32,
}

/// A decoded delta.
#[derive(Clone, Debug)]
pub struct Delta {
    /// What it is a delta of.
    pub header: DeltaHeader,
    /// `after − before` per trained factor.
    pub tensors: NamedTensors,
}

impl Delta {
    /// The compressed file bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let raw = tensors::encode(&self.tensors, &self.header)?;
        zstd::bulk::compress(&raw, ZSTD_LEVEL)
            .map_err(|e| Error::format("<delta>", format!("zstd: {e}")))
    }

    /// Decodes delta bytes; the message names the problem for the caller to attach a path to.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let raw = zstd::bulk::decompress(bytes, MAX_DECOMPRESSED)
            .map_err(|e| format!("not a zstd frame: {e}"))?;
        let (meta, tensors) = tensors::decode(&raw)?;
        let header = tensors::parse_header(&meta, DELTA_FORMAT, DELTA_VERSION)?;
        Ok(Self { header, tensors })
    }

    /// Reads a delta file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = crate::files::read(path)?;
        Self::from_bytes(&bytes).map_err(|m| Error::format(path, m))
    }
}
