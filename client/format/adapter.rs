//! The LoRA adapter: which layers carry one, their factors, and the adapter file.
//!
//! File format (`docs/formats.md#adapter`): a signed file (`crate::format::signed`) whose payload is
//! safetensors holding `<site>.lora_a` (rank × in) and
//! `<site>.lora_b` (out × rank) in f32 for every adapted site, and one metadata entry, `aginet`,
//! whose JSON value is an [`AdapterHeader`] (`format = "aginet-adapter"`, `version = 1`).
//! The first round has no adapter file: every volunteer derives the same initial adapter from
//! the config's `adapter_seed` (A uniform in ±1/√in, B zero).

use crate::error::{Error, Result};
use crate::format::tensors::{self, NamedTensors};
use candle_core::{Device, Tensor};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The adapter file's `format` value.
pub const ADAPTER_FORMAT: &str = "aginet-adapter";
/// The adapter file version this build reads and writes.
pub const ADAPTER_VERSION: u32 = 1;

/// Which layers are adapted, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSpec {
    /// Layer kinds that carry an adapter, by their GGUF name (`attn_q`, `ffn_down`, …).
    pub targets: Vec<String>,
    /// Rank of each adapter.
    pub rank: usize,
    /// Scale numerator: the update is `alpha / rank · B·A`.
    pub alpha: f64,
    /// Whether `A` is trained too. With `A` frozen and shared, averaging the clients' `B`
    /// deltas is exactly averaging their updates `ΔB·A`, which keeps aggregation exact.
    pub train_a: bool,
}

impl LoraSpec {
    /// No adapted site: the base alone.
    pub fn none() -> Self {
        Self {
            targets: vec![],
            rank: 1,
            alpha: 1.0,
            train_a: false,
        }
    }

    /// `alpha / rank`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// One adapted layer: its name prefix (`blk.0.attn_q`) and the frozen weight's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// GGUF tensor name without `.weight`.
    pub name: String,
    /// Output features of the layer.
    pub out: usize,
    /// Input features of the layer.
    pub inp: usize,
}

/// The metadata stored with an adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterHeader {
    /// Always [`ADAPTER_FORMAT`].
    pub format: String,
    /// File version, [`ADAPTER_VERSION`].
    pub version: u32,
    /// Skill the adapter belongs to.
    pub skill: String,
    /// sha256 of the base it adapts.
    pub base_sha256: String,
    /// Global adapter version (0 before the first aggregation).
    pub adapter_version: u64,
    /// How the adapter is shaped.
    pub lora: LoraSpec,
}

impl AdapterHeader {
    /// The header of global version `adapter_version` of `skill`, in this build's file version.
    pub fn new(skill: &str, base_sha256: &str, adapter_version: u64, lora: &LoraSpec) -> Self {
        Self {
            format: ADAPTER_FORMAT.into(),
            version: ADAPTER_VERSION,
            skill: skill.to_string(),
            base_sha256: base_sha256.to_string(),
            adapter_version,
            lora: lora.clone(),
        }
    }
}

/// A full adapter: header plus factors by tensor name.
#[derive(Clone, Debug)]
pub struct Adapter {
    /// What the adapter is.
    pub header: AdapterHeader,
    /// `<site>.lora_a` and `<site>.lora_b` for every site.
    pub tensors: NamedTensors,
}

/// Name of the A factor of `site`.
pub fn a_name(site: &str) -> String {
    format!("{site}.lora_a")
}

/// Name of the B factor of `site`.
pub fn b_name(site: &str) -> String {
    format!("{site}.lora_b")
}

/// Every factor of `sites` with its shape: `<site>.lora_b` (out × rank), preceded by
/// `<site>.lora_a` (rank × in) when `with_a`.
pub fn factor_shapes(sites: &[Site], rank: usize, with_a: bool) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for site in sites {
        if with_a {
            out.push((a_name(&site.name), vec![rank, site.inp]));
        }
        out.push((b_name(&site.name), vec![site.out, rank]));
    }
    out
}

impl Adapter {
    /// The initial adapter: A uniform in ±1/√in from `seed`, B zero, so it changes nothing yet.
    pub fn initial(header: AdapterHeader, sites: &[Site], seed: u64) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let rank = header.lora.rank;
        let mut tensors = NamedTensors::new();
        for site in sites {
            let bound = 1.0 / (site.inp as f32).sqrt();
            let a: Vec<f32> = (0..rank * site.inp)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            tensors.insert(
                a_name(&site.name),
                Tensor::from_vec(a, (rank, site.inp), &Device::Cpu)?,
            );
            tensors.insert(
                b_name(&site.name),
                Tensor::zeros((site.out, rank), candle_core::DType::F32, &Device::Cpu)?,
            );
        }
        Ok(Self { header, tensors })
    }

    /// Reads an adapter file, verifies its signature with the project's `key`, and checks it
    /// against the expected header (skill, base, rank, targets) and the sites' shapes.
    pub fn read(
        path: &Path,
        expected: &AdapterHeader,
        sites: &[Site],
        key: &VerifyingKey,
    ) -> Result<Self> {
        Self::from_signed_bytes(
            &crate::format::files::read(path)?,
            path,
            expected,
            sites,
            key,
        )
    }

    /// Parses and checks a signed adapter held in memory; `path` names it in errors.
    pub fn from_signed_bytes(
        signed: &[u8],
        path: &Path,
        expected: &AdapterHeader,
        sites: &[Site],
        key: &VerifyingKey,
    ) -> Result<Self> {
        let bytes =
            crate::format::signed::open(signed, key).map_err(|m| Error::adapter(path, m))?;
        let (meta, tensors) = tensors::decode(bytes).map_err(|m| Error::adapter(path, m))?;
        let header: AdapterHeader = tensors::parse_header(&meta, ADAPTER_FORMAT, ADAPTER_VERSION)
            .map_err(|m| Error::adapter(path, m))?;
        let mismatch = |field: &str, got: String, want: String| {
            Error::adapter(
                path,
                format!("field {field} is {got}, the work unit expects {want}"),
            )
        };
        if header.skill != expected.skill {
            return Err(mismatch("skill", header.skill, expected.skill.clone()));
        }
        if header.base_sha256 != expected.base_sha256 {
            return Err(mismatch(
                "base_sha256",
                header.base_sha256,
                expected.base_sha256.clone(),
            ));
        }
        if header.adapter_version != expected.adapter_version {
            return Err(mismatch(
                "adapter_version",
                header.adapter_version.to_string(),
                expected.adapter_version.to_string(),
            ));
        }
        if header.lora.rank != expected.lora.rank {
            return Err(mismatch(
                "lora.rank",
                header.lora.rank.to_string(),
                expected.lora.rank.to_string(),
            ));
        }
        if header.lora.targets != expected.lora.targets {
            return Err(mismatch(
                "lora.targets",
                format!("{:?}", header.lora.targets),
                format!("{:?}", expected.lora.targets),
            ));
        }
        let want = factor_shapes(sites, header.lora.rank, true);
        tensors::check_shapes(&tensors, &want).map_err(|m| Error::adapter(path, m))?;
        Ok(Self { header, tensors })
    }

    /// The adapter's unsigned bytes (safetensors).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        tensors::encode(&self.tensors, &self.header)
    }

    /// The adapter file's bytes: signed with the project's key.
    pub fn to_signed_bytes(&self, key: &SigningKey) -> Result<Vec<u8>> {
        Ok(crate::format::signed::seal(&self.to_bytes()?, key))
    }
}

/// Names of the factors that are trained: every B, and every A when `train_a`.
pub fn trainable_names(sites: &[Site], train_a: bool) -> Vec<String> {
    factor_shapes(sites, 0, train_a)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}
