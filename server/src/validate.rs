//! `validate`: BOINC's `script_validator` for one result (exit 0 valid, 1 invalid, 3 try
//! later), and the compare mode for replicas.
//!
//! A volunteer may run a modified app, so nothing in the result is trusted. In order: the report
//! parses; the delta's sha256 is the one the report names; the delta parses and describes the
//! same skill, base and adapter version as the report; the skill, base and version are known and
//! the version is at most `max_staleness` behind; tensor names and shapes are the skill's; every
//! value is finite; the delta's L2 norm is within `max_delta_norm`; it is not a replay of an
//! accepted delta; then the server applies it to the global adapter it started from and
//! recomputes the reward on held-out data, which must reach the skill's threshold; and at a
//! short step along the delta (`probe_scale` times it, about one result's weight in a cohort)
//! the held-out reward may fall below the starting adapter's by at most `max_probe_drop`
//! (relative): a reversed or sabotaged delta is rejected, while an honest one, which fits its
//! small shard and can look worse applied whole, is not. Last, the reward
//! the report claims on its work unit's eval split is recomputed on the server's copy of that
//! split and must agree within `CLAIM_TOLERANCE`: a forged report is rejected.

use crate::project::Project;
use crate::scorers::Scorers;
use aginet::format::adapter::factor_shapes;
use aginet::format::delta::Delta;
use aginet::format::report::Report;
use aginet::learn::score;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Relative difference allowed between the reward a report claims on its work unit's eval
/// split and the server's recomputation: the same code on the same examples, so only float
/// rounding (thread counts, batching, CPU) separates them. A reward that counts examples
/// (accuracy, recall, accepted plans) may also differ by one example.
const CLAIM_TOLERANCE: f64 = 1e-3;

/// The validator's decision on one result.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Verdict {
    /// Accepted, with the rewards the server recomputed on held-out data.
    Valid {
        /// The starting adapter's reward.
        reward_before: f64,
        /// The reward with the delta applied.
        reward_after: f64,
        /// The delta's L2 norm.
        delta_norm: f64,
    },
    /// Rejected, and why.
    Invalid(String),
}

/// The result's two files, told apart by content (the report is JSON, the delta a zstd frame).
pub fn identify(files: &[PathBuf]) -> Result<(PathBuf, PathBuf), String> {
    let mut delta = None;
    let mut report = None;
    for f in files {
        // The first byte tells them apart; the files are read whole later, once.
        let mut head = [0u8; 1];
        let n = std::io::Read::read(
            &mut std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?,
            &mut head,
        )
        .map_err(|e| format!("{}: {e}", f.display()))?;
        if n == 1 && head[0] == b'{' {
            report = Some(f.clone());
        } else {
            delta = Some(f.clone());
        }
    }
    match (delta, report) {
        (Some(d), Some(r)) => Ok((d, r)),
        _ => Err(format!("expected a delta and a report among {files:?}")),
    }
}

/// Validates one result, scoring with `scorers` (loading a skill's base there when it is not
/// loaded yet). `Err` is a transient failure (the project's own files unreadable).
pub fn validate(project: &Project, scorers: &mut Scorers, files: &[PathBuf]) -> Result<Verdict> {
    macro_rules! reject {
        ($($arg:tt)*) => { return Ok(Verdict::Invalid(format!($($arg)*))) };
    }
    let (delta_path, report_path) = match identify(files) {
        Ok(p) => p,
        Err(m) => reject!("{m}"),
    };
    let report = match Report::read(&report_path) {
        Ok(r) => r,
        Err(e) => reject!("{e}"),
    };
    let bytes = match std::fs::read(&delta_path) {
        Ok(b) => b,
        Err(e) => reject!("{}: {e}", delta_path.display()),
    };
    let sha = aginet::format::files::sha256_hex(&bytes);
    if sha != report.delta_sha256 {
        reject!(
            "{}: sha256 differs from the report's (file {sha}, report {})",
            delta_path.display(),
            report.delta_sha256
        );
    }
    let delta = match Delta::from_bytes(&bytes) {
        Ok(d) => d,
        Err(m) => reject!("{}: {m}", delta_path.display()),
    };
    let h = &delta.header;
    if h.skill != report.skill
        || h.base_sha256 != report.base_sha256
        || h.adapter_version != report.adapter_version
    {
        reject!("the delta's skill/base/version disagree with the report's");
    }
    if !project.settings.skills.contains(&h.skill) {
        reject!("unknown skill {:?}", h.skill);
    }
    let manifest = project.manifest(&h.skill)?;
    if report.reward_kind != manifest.reward.kind {
        reject!(
            "the report's reward kind {:?} is not the skill's {:?}",
            report.reward_kind,
            manifest.reward.kind
        );
    }
    if h.base_sha256 != manifest.base.sha256 {
        reject!(
            "base sha256 {} is not the skill's {}",
            h.base_sha256,
            manifest.base.sha256
        );
    }
    if h.lora != manifest.lora {
        reject!(
            "the delta's LoRA shape {:?} is not the skill's {:?}",
            h.lora,
            manifest.lora
        );
    }
    let current = project.adapter_version(&h.skill)?;
    if h.adapter_version > current {
        reject!(
            "adapter version {} is unknown (current {current})",
            h.adapter_version
        );
    }
    if current - h.adapter_version > project.settings.validate.max_staleness {
        reject!(
            "stale: adapter version {} is {} behind the current {current} (at most {})",
            h.adapter_version,
            current - h.adapter_version,
            project.settings.validate.max_staleness
        );
    }
    let sites = Project::sites(&manifest)?;
    let want = factor_shapes(&sites, manifest.lora.rank, manifest.lora.train_a);
    if let Err(m) = aginet::format::tensors::check_shapes(&delta.tensors, &want) {
        reject!("{}: {m}", delta_path.display());
    }
    let mut sum_sq = 0f64;
    for (name, t) in &delta.tensors {
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            reject!("tensor {name} holds a non-finite value ({v})");
        }
        sum_sq += values
            .iter()
            .map(|v| (*v as f64) * (*v as f64))
            .sum::<f64>();
    }
    let norm = sum_sq.sqrt();
    if norm > project.settings.validate.max_delta_norm {
        reject!(
            "delta L2 norm {norm:.3} exceeds max_delta_norm {}",
            project.settings.validate.max_delta_norm
        );
    }
    if is_replay(&project.seen_deltas(), &sha)? {
        reject!("replay: delta {sha} was already accepted");
    }

    let adapter = project.global_adapter(&manifest, h.adapter_version)?;
    let reward_before = scorers.version_reward(project, &h.skill, h.adapter_version)?;
    let with_delta = match score::apply_delta(&adapter, &delta.tensors) {
        Ok(f) => f,
        Err(e) => reject!("{e}"),
    };
    // The held-out reward and, for a known work unit, the reward on its eval split, from one
    // load of the model; checked below in that order.
    let eval = project.workunit_eval(report.seed);
    let mut datasets = vec![project.held_out(&manifest.name)];
    if eval.exists() {
        datasets.push(eval);
    }
    let paths: Vec<&Path> = datasets.iter().map(PathBuf::as_path).collect();
    let rewards = scorers.rewards(project, &manifest, &with_delta, &paths)?;
    let reward_after = rewards[0];
    if reward_after < manifest.reward.threshold {
        reject!(
            "held-out reward {reward_after:.6} is below the skill's threshold {}",
            manifest.reward.threshold
        );
    }
    let counts_examples = manifest.reward.kind != aginet::learn::eval::REWARD_KIND;
    let bounds = &project.settings.validate;
    let probe = aginet::format::tensors::scaled(&delta.tensors, bounds.probe_scale)?;
    let with_probe = match score::apply_delta(&adapter, &probe) {
        Ok(f) => f,
        Err(e) => reject!("{e}"),
    };
    let reward_probe = scorers.reward(project, &manifest, &with_probe, &datasets[0])?;
    let mut floor = reward_before * (1.0 - bounds.max_probe_drop);
    if counts_examples {
        floor -= 1.0 / count_lines(&datasets[0])?.max(1) as f64 + 1e-12;
    }
    if reward_probe < floor {
        reject!(
            "held-out reward falls from {reward_before:.6} to {reward_probe:.6} at a step of \
             {} along the delta (more than {} relative): it points away from what the held-out \
             data rewards",
            bounds.probe_scale,
            bounds.max_probe_drop
        );
    }
    let Some(&recomputed) = rewards.get(1) else {
        reject!(
            "work unit {} is unknown: make-work recorded no eval split for it",
            report.seed
        );
    };
    let claimed = report.reward_after;
    let mut allowed = CLAIM_TOLERANCE * recomputed.abs().max(claimed.abs());
    if counts_examples {
        // A fraction of examples: a near tie decided otherwise by another CPU's rounding moves
        // it by a whole example, so one example's worth is allowed.
        allowed = allowed.max(1.0 / count_lines(&datasets[1])?.max(1) as f64 + 1e-12);
    }
    let agrees = (claimed - recomputed).abs() <= allowed;
    if !agrees {
        reject!(
            "claimed reward {claimed:.6} disagrees with the {recomputed:.6} recomputed on work unit {}'s eval split",
            report.seed
        );
    }
    let verdict = Verdict::Valid {
        reward_before,
        reward_after,
        delta_norm: norm,
    };
    let path = project.verdict(&sha);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    }
    aginet::format::files::write_atomic(&path, serde_json::to_string(&verdict)?.as_bytes())?;
    Ok(verdict)
}

/// The non-blank lines of a data file (its examples).
fn count_lines(path: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(text.lines().filter(|l| !l.trim().is_empty()).count())
}

/// Whether `sha` is listed in the accepted-delta file (absent file: nothing accepted yet).
fn is_replay(seen: &Path, sha: &str) -> Result<bool> {
    match std::fs::read_to_string(seen) {
        Ok(text) => Ok(text.lines().any(|l| l.trim() == sha)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("{}", seen.display())),
    }
}

/// Compare mode: two replicas of a deterministic app are equivalent when their deltas are
/// byte-identical.
pub fn equivalent(files: &[PathBuf], files2: &[PathBuf]) -> Result<bool> {
    let delta_of = |fs: &[PathBuf]| -> Result<Vec<u8>> {
        let (d, _) = identify(fs).map_err(anyhow::Error::msg)?;
        std::fs::read(&d).with_context(|| format!("{}", d.display()))
    };
    Ok(delta_of(files)? == delta_of(files2)?)
}
