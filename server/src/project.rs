//! The project folder: the server's whole state, as plain files written atomically.
//!
//! ```text
//! PROJECT/
//!   project.toml                  settings (routing)
//!   keys/signing.key              ed25519 secret key, hex (mode 0600)
//!   keys/signing.pub              its public key, hex (the app's copy verifies adapters)
//!   keys/storage.key              XChaCha20-Poly1305 key sealing the archive, hex (mode 0600)
//!   scoreboard.csv                one line per decided result (see scoreboard.rs)
//!   state/next_workunit           counter naming work units
//!   state/seen_deltas             sha256 of every accepted delta (replay check)
//!   state/verdicts/<sha>.json     the validator's verdict on each valid delta
//!   state/rewards/<skill>/v<N>.json  the held-out reward of each global version (a cache)
//!   state/workunits/<n>.eval.jsonl   work unit n's eval split, to check claimed rewards
//!   skills/<skill>/manifest.toml  the skill's manifest, copied from models/
//!   skills/<skill>/base.gguf      its base model
//!   skills/<skill>/data/train.jsonl     the pool volunteers' shards are drawn from
//!   skills/<skill>/data/held_out.jsonl  the validator's data; never leaves the server
//!   skills/<skill>/adapters/v<N>.sealed   global adapter versions, signed then sealed (none: version 0)
//!   skills/<skill>/published/v<N>.adapter the signed adapter work units carry (made by make-work)
//!   skills/<skill>/queue/         accepted deltas waiting for aggregation
//!   skills/<skill>/rounds/v<N>.json       the deltas each aggregation consumed or dropped
//!   skills/<skill>/optimizer/v<N>.state   the server optimizer's moments, sealed
//! ```
//! Documented for operators in `docs/operator.md`.

use crate::sealed::StorageKey;
use aginet::format::adapter::{Adapter, AdapterHeader, Site};
use aginet::format::manifest::Manifest;
use aginet::format::tensors::NamedTensors;
use aginet::learn::score::{self, Skill};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `project.toml`'s `format` value.
const PROJECT_FORMAT: &str = "aginet-project";
/// The project layout version this build reads.
const PROJECT_VERSION: u32 = 1;

/// Routing settings (`[route]` in `project.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// UCB exploration weight.
    pub exploration: f64,
    /// Least share of recent work units every skill gets.
    pub min_share: f64,
    /// How many recent work units the share is measured over.
    pub window: usize,
    /// Seed breaking ties.
    pub seed: u64,
}

/// Work generation settings (`[work]` in `project.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkSettings {
    /// Training examples per work unit.
    pub shard_size: usize,
    /// Eval examples per work unit (the app's own before/after check).
    pub eval_size: usize,
    /// Mixed into every work unit's shard draw, so that two projects on the same pool draw
    /// different shards (0, the default: the work-unit number alone seeds the draw).
    #[serde(default)]
    pub shard_seed: u64,
}

/// Validation bounds (`[validate]` in `project.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateSettings {
    /// How many global versions behind the current one a delta may start from.
    pub max_staleness: u64,
    /// Largest L2 norm of a whole delta.
    pub max_delta_norm: f64,
    /// The step along a delta at which the validator judges it: the held-out reward of the
    /// starting adapter plus `probe_scale` times the delta, about the weight one result carries
    /// among a cohort's. Whole, an honest delta of a few steps on one small shard can lower the
    /// held-out reward on its own by half late in training (the noise of fitting its shard is
    /// second order in the step and cancels in the cohort's mean); a short step along it raises
    /// the reward, and one along a reversed or sabotaged delta lowers it.
    #[serde(default = "default_probe_scale")]
    pub probe_scale: f64,
    /// Largest relative fall of the held-out reward at the probe step (a reward that counts
    /// examples may also fall by one example's worth).
    #[serde(default = "default_max_probe_drop")]
    pub max_probe_drop: f64,
    /// Replaced by `probe_scale` and `max_probe_drop` (it bounded the fall of the held-out
    /// reward with the whole delta applied); read so that older projects open, and ignored.
    #[serde(default, skip_serializing)]
    pub max_reward_drop: Option<f64>,
}

/// The default [`ValidateSettings::probe_scale`]: as one result among five.
fn default_probe_scale() -> f64 {
    0.2
}

/// The default [`ValidateSettings::max_probe_drop`].
fn default_max_probe_drop() -> f64 {
    0.05
}

/// `project.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Always `aginet-project`.
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// Skills this project trains.
    pub skills: Vec<String>,
    /// Routing.
    pub route: RouteSettings,
    /// Work generation.
    pub work: WorkSettings,
    /// Validation bounds.
    pub validate: ValidateSettings,
}

impl Settings {
    /// Writes these settings to `root/project.toml` (atomically).
    pub fn write(&self, root: &Path) -> Result<()> {
        let toml = toml::to_string_pretty(self).context("serializing project.toml")?;
        aginet::format::files::write_atomic(&root.join("project.toml"), toml.as_bytes())?;
        Ok(())
    }
}

/// An opened project folder.
#[derive(Clone, Debug)]
pub struct Project {
    root: PathBuf,
    /// Its settings.
    pub settings: Settings,
}

impl Project {
    /// Opens an initialised project.
    pub fn open(root: &Path) -> Result<Self> {
        let path = root.join("project.toml");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: not an agiNet project (run `aginet-server init`)",
                path.display()
            )
        })?;
        let settings: Settings =
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        if settings.format != PROJECT_FORMAT || settings.version != PROJECT_VERSION {
            bail!(
                "{}: format {:?} version {} is not {PROJECT_FORMAT:?} version {PROJECT_VERSION}",
                path.display(),
                settings.format,
                settings.version
            );
        }
        let v = &settings.validate;
        if !(v.probe_scale > 0.0 && v.probe_scale <= 1.0) {
            bail!(
                "{}: [validate] probe_scale {} is not in (0, 1]",
                path.display(),
                v.probe_scale
            );
        }
        if !(0.0..=1.0).contains(&v.max_probe_drop) {
            bail!(
                "{}: [validate] max_probe_drop {} is not in [0, 1]",
                path.display(),
                v.max_probe_drop
            );
        }
        if v.max_reward_drop.is_some() {
            tracing::warn!(
                "{}: [validate] max_reward_drop is no longer used (probe_scale and \
                 max_probe_drop replace it); ignored",
                path.display()
            );
        }
        Ok(Self {
            root: root.to_path_buf(),
            settings,
        })
    }

    /// The default settings of a new project training `skills`.
    pub fn default_settings(skills: Vec<String>) -> Settings {
        Settings {
            format: PROJECT_FORMAT.into(),
            version: PROJECT_VERSION,
            skills,
            route: RouteSettings {
                exploration: 0.5,
                min_share: 0.1,
                window: 100,
                seed: 0,
            },
            work: WorkSettings {
                shard_size: 64,
                eval_size: 8,
                shard_seed: 0,
            },
            validate: ValidateSettings {
                max_staleness: 3,
                max_delta_norm: 100.0,
                probe_scale: default_probe_scale(),
                max_probe_drop: default_max_probe_drop(),
                max_reward_drop: None,
            },
        }
    }

    /// The project folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The project's ed25519 public key (hex), shipped to volunteers as `project_key`.
    pub fn public_key(&self) -> PathBuf {
        self.root.join("keys").join("signing.pub")
    }

    /// The project's ed25519 secret key (hex), which signs global adapters.
    pub fn signing_key(&self) -> PathBuf {
        self.root.join("keys").join("signing.key")
    }

    /// The key sealing the archive of adapters and optimizer state (hex, never leaves the server).
    pub fn storage_key_path(&self) -> PathBuf {
        self.root.join("keys").join("storage.key")
    }

    /// Reads the storage key.
    pub fn storage_key(&self) -> Result<StorageKey> {
        StorageKey::read(&self.storage_key_path())
    }

    /// `scoreboard.csv`.
    pub fn scoreboard(&self) -> PathBuf {
        self.root.join("scoreboard.csv")
    }

    /// The folder of `skill`.
    pub fn skill_dir(&self, skill: &str) -> PathBuf {
        self.root.join("skills").join(skill)
    }

    /// The manifest of `skill`, failing if the project does not train it.
    pub fn manifest(&self, skill: &str) -> Result<Manifest> {
        if !self.settings.skills.iter().any(|s| s == skill) {
            bail!(
                "skill {skill:?} is not one of this project's skills {:?}",
                self.settings.skills
            );
        }
        Ok(Manifest::read(&self.manifest_path(skill))?)
    }

    /// Where the project's copy of `skill`'s manifest lives.
    pub fn manifest_path(&self, skill: &str) -> PathBuf {
        self.skill_dir(skill).join("manifest.toml")
    }

    /// The base model file of `skill`.
    pub fn base(&self, skill: &str) -> PathBuf {
        self.skill_dir(skill).join("base.gguf")
    }

    /// The training pool of `skill`.
    pub fn train_pool(&self, skill: &str) -> PathBuf {
        self.skill_dir(skill).join("data").join("train.jsonl")
    }

    /// The held-out data of `skill`.
    pub fn held_out(&self, skill: &str) -> PathBuf {
        self.skill_dir(skill).join("data").join("held_out.jsonl")
    }

    /// The resident validator's socket in project folder `root`.
    pub fn validator_socket(root: &Path) -> PathBuf {
        root.join("state").join("validator.sock")
    }

    /// sha256s of every delta already accepted, one per line (replays are rejected).
    pub fn seen_deltas(&self) -> PathBuf {
        self.root.join("state").join("seen_deltas")
    }

    /// Where the validator records its verdict on the delta with sha256 `sha`.
    pub fn verdict(&self, sha: &str) -> PathBuf {
        self.root
            .join("state")
            .join("verdicts")
            .join(format!("{sha}.json"))
    }

    /// The queue of accepted deltas of `skill`.
    pub fn queue(&self, skill: &str) -> PathBuf {
        self.skill_dir(skill).join("queue")
    }

    /// The sealed file of global adapter `version` of `skill`.
    pub fn adapter(&self, skill: &str, version: u64) -> PathBuf {
        self.skill_dir(skill)
            .join("adapters")
            .join(format!("v{version:06}.sealed"))
    }

    /// The role a sealed file is bound to: `<skill>/<kind>/v<N>`.
    pub fn sealed_role(skill: &str, kind: &str, version: u64) -> String {
        format!("{skill}/{kind}/v{version:06}")
    }

    /// The signed bytes of global adapter `version` of `skill` (version ≥ 1), unsealed.
    pub fn signed_adapter(&self, skill: &str, version: u64) -> Result<Vec<u8>> {
        self.storage_key()?.read_file(
            &self.adapter(skill, version),
            &Self::sealed_role(skill, "adapter", version),
        )
    }

    /// The signed adapter file work units of `version` carry, written from the sealed archive
    /// the first time it is asked for.
    pub fn published_adapter(&self, skill: &str, version: u64) -> Result<PathBuf> {
        let path = self
            .skill_dir(skill)
            .join("published")
            .join(format!("v{version:06}.adapter"));
        if !path.exists() {
            let bytes = self.signed_adapter(skill, version)?;
            let dir = path.parent().expect("a parent folder");
            std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
            aginet::format::files::write_atomic(&path, &bytes)?;
        }
        Ok(path)
    }

    /// The newest global adapter version of `skill` (0: none written yet, the derived initial one).
    pub fn adapter_version(&self, skill: &str) -> Result<u64> {
        let dir = self.skill_dir(skill).join("adapters");
        let mut newest = 0;
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(v) = name
                .strip_prefix('v')
                .and_then(|n| n.strip_suffix(".sealed"))
            {
                if let Ok(v) = v.parse::<u64>() {
                    newest = newest.max(v);
                }
            }
        }
        Ok(newest)
    }

    /// The adapted sites of a skill's base.
    pub fn sites(manifest: &Manifest) -> Result<Vec<Site>> {
        manifest
            .architecture
            .sites(&manifest.lora.targets)
            .map_err(anyhow::Error::msg)
    }

    /// The header global version `version` of the skill carries.
    pub fn adapter_header(manifest: &Manifest, version: u64) -> AdapterHeader {
        AdapterHeader::new(
            &manifest.name,
            &manifest.base.sha256,
            version,
            &manifest.lora,
        )
    }

    /// Global adapter `version` of the skill: its signed file (verified), or the derived
    /// initial adapter for version 0.
    pub fn global_adapter(&self, manifest: &Manifest, version: u64) -> Result<Adapter> {
        let sites = Self::sites(manifest)?;
        let header = Self::adapter_header(manifest, version);
        if version == 0 {
            return Ok(Adapter::initial(
                header,
                &sites,
                manifest.defaults.adapter_seed,
            )?);
        }
        let key = aginet::format::signed::read_public_key(&self.public_key())?;
        let signed = self.signed_adapter(&manifest.name, version)?;
        Ok(Adapter::from_signed_bytes(
            &signed,
            &self.adapter(&manifest.name, version),
            &header,
            &sites,
            &key,
        )?)
    }

    /// The server's copy of the eval split of work unit `n`.
    pub fn workunit_eval(&self, n: u64) -> PathBuf {
        self.root
            .join("state")
            .join("workunits")
            .join(format!("{n}.eval.jsonl"))
    }

    /// The held-out reward of the skill's base with adapter `factors`.
    pub fn held_out_reward(&self, manifest: &Manifest, factors: &NamedTensors) -> Result<f64> {
        self.reward_on(manifest, factors, &self.held_out(&manifest.name))
    }

    /// The reward of the skill's base with adapter `factors` on the examples in `data`.
    pub fn reward_on(
        &self,
        manifest: &Manifest,
        factors: &NamedTensors,
        data: &Path,
    ) -> Result<f64> {
        Ok(self.rewards_on(manifest, factors, &[data])?[0])
    }

    /// [`Project::reward_on`] for several data files, with one load of the model.
    pub fn rewards_on(
        &self,
        manifest: &Manifest,
        factors: &NamedTensors,
        datasets: &[&Path],
    ) -> Result<Vec<f64>> {
        Ok(score::rewards(
            &self.base(&manifest.name),
            &Skill::of(manifest),
            factors,
            datasets,
        )?)
    }

    /// The held-out reward of global `version` of `skill`, computed once and cached under
    /// `state/rewards/<skill>/v<N>.json`: a version never changes, and the validator (every
    /// result starts from one) and the snapshot (every version) ask for it again and again.
    pub fn version_reward(&self, skill: &str, version: u64) -> Result<f64> {
        self.version_reward_by(skill, version, |manifest, factors| {
            self.held_out_reward(manifest, factors)
        })
    }

    /// [`Project::version_reward`], computing a missing one with `held_out` (the held-out
    /// reward of the skill's base with the given factors).
    pub fn version_reward_by(
        &self,
        skill: &str,
        version: u64,
        held_out: impl FnOnce(&Manifest, &NamedTensors) -> Result<f64>,
    ) -> Result<f64> {
        let path = self
            .root
            .join("state")
            .join("rewards")
            .join(skill)
            .join(format!("v{version:06}.json"));
        if let Ok(bytes) = std::fs::read(&path) {
            if let Ok(reward) = serde_json::from_slice::<f64>(&bytes) {
                return Ok(reward);
            }
        }
        let manifest = self.manifest(skill)?;
        let adapter = self.global_adapter(&manifest, version)?;
        let reward = held_out(&manifest, &adapter.tensors)?;
        let dir = path.parent().expect("a parent folder");
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        aginet::format::files::write_atomic(&path, serde_json::to_string(&reward)?.as_bytes())?;
        Ok(reward)
    }

    /// Takes the next `count` work-unit numbers from the project's counter.
    pub fn take_workunit_numbers(&self, count: u64) -> Result<std::ops::Range<u64>> {
        let path = self.root.join("state").join("next_workunit");
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let first: u64 = text
            .trim()
            .parse()
            .with_context(|| format!("{}: not a number: {text:?}", path.display()))?;
        aginet::format::files::write_atomic(&path, format!("{}\n", first + count).as_bytes())?;
        Ok(first..first + count)
    }
}
