//! `aggregate`: turns a skill's queue of accepted deltas into the next global adapter version.
//!
//! 1. The cohort is every queued delta, in sha256 order. A delta whose starting version lags
//!    the current one by more than `max_staleness` is dropped; the others are weighted by their
//!    trained tokens times `1 / (1 + lag)`.
//! 2. Each delta's L2 norm is clipped to `clip_factor ×` the cohort's median norm, so one hostile
//!    volunteer cannot move the model far.
//! 3. The weighted mean is accumulated one delta file at a time: memory grows with the adapter
//!    size, never with the number of deltas.
//! 4. The strategy (FedAvg, FedAvgM, FedAdam, FedYogi) steps the global adapter's B factors.
//!    With A frozen and shared (`train_a = false`, which aggregation requires), the mean of the
//!    clients' ΔB is exactly the mean of their updates ΔB·A: aggregation is exact for LoRA.
//! 5. The new version is committed in an order that survives a crash anywhere: the optimizer
//!    state and the adapter, signed with the project key and sealed with its storage key, are
//!    written under temporary names, the round record (which
//!    deltas it consumed) is written, the adapter is renamed into place (the commit), and only
//!    then are the consumed deltas removed from the queue. A rerun after a crash recomputes
//!    the same bytes from the same queue, or finishes the clean-up of a committed round.

use crate::accumulate::{weighted_mean, Decoding, Member};
use crate::fault;
use crate::project::Project;
use crate::queue;
use crate::sealed::StorageKey;
use crate::strategy::{Choice, Moments, Strategy};
use aginet::format::files::write_atomic;
use aginet::format::tensors::{self, NamedTensors};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A delta's norm may be at most this many times the cohort's median norm.
const CLIP_FACTOR: f64 = 2.0;

/// The record of one aggregation round, `skills/<skill>/rounds/v<N>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Round {
    /// The version this round produced.
    pub version: u64,
    /// The strategy used.
    pub strategy: Strategy,
    /// sha256 of every delta consumed.
    pub consumed: Vec<String>,
    /// sha256 of deltas dropped as too stale.
    pub dropped: Vec<String>,
}

/// The optimizer state's header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct OptimizerHeader {
    format: String,
    version: u32,
    strategy: Strategy,
    rounds: u64,
}

/// What a call did for one skill.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The queue was empty.
    Nothing,
    /// Fewer fresh deltas than the buffer asks for (`min_deltas`); nothing was consumed.
    Waiting {
        /// Deltas queued within the staleness bound.
        fresh: usize,
        /// The buffer size asked for.
        min_deltas: usize,
    },
    /// Version `version` was written from `deltas` deltas.
    NewVersion {
        /// The new global version.
        version: u64,
        /// Deltas aggregated.
        deltas: usize,
        /// Deltas dropped as stale.
        dropped: usize,
        /// The server optimizer that made it.
        choice: Choice,
    },
}

fn rounds_dir(project: &Project, skill: &str) -> PathBuf {
    project.skill_dir(skill).join("rounds")
}

fn optimizer_path(project: &Project, skill: &str, version: u64) -> PathBuf {
    project
        .skill_dir(skill)
        .join("optimizer")
        .join(format!("v{version:06}.state"))
}

/// Runs one aggregation round for `skill` with `strategy` (default: the skill manifest's
/// `[server]` table, else FedAvg) and its server learning rate replaced by `server_lr` when
/// given ([`Choice::resolve`]), reading deltas as `decoding` says, once the queue holds
/// at least `min_deltas` deltas within the staleness bound (FedBuff's buffer, Nguyen et al.
/// 2022: run often with a buffer of K, a project makes a global version per K results instead
/// of one a night; 1 aggregates whatever is queued).
pub fn aggregate(
    project: &Project,
    skill: &str,
    strategy: Option<Strategy>,
    server_lr: Option<f32>,
    decoding: Decoding,
    min_deltas: usize,
) -> Result<Outcome> {
    let manifest = project.manifest(skill)?;
    let choice = Choice::resolve(
        &manifest,
        &project.manifest_path(skill),
        strategy,
        server_lr,
    )?;
    let Choice {
        strategy,
        server_lr,
    } = choice;
    if manifest.lora.train_a {
        bail!("skill {skill}: train_a = true; averaging A and B separately is not exact, refusing to aggregate");
    }
    finish_committed_round(project, skill)?;
    let current = project.adapter_version(skill)?;
    let next = current + 1;

    let queue = project.queue(skill);
    let shas = queue::list(&queue)?;
    if shas.is_empty() {
        return Ok(Outcome::Nothing);
    }

    // The cohort, weighted by tokens and staleness, from the server's own queue entries.
    let max_lag = project.settings.validate.max_staleness;
    let mut members = Vec::new();
    let mut consumed = Vec::new();
    let mut dropped = Vec::new();
    for sha in &shas {
        let entry = queue::entry(&queue, sha)?;
        let lag = current.saturating_sub(entry.adapter_version);
        if lag > max_lag {
            tracing::info!("{skill}: dropping stale delta {sha} (lag {lag})");
            dropped.push(sha.clone());
            continue;
        }
        members.push(Member {
            path: queue::delta_path(&queue, sha),
            weight: entry.tokens.max(1) as f64 / (1 + lag) as f64,
            scale: 1.0,
            norm: entry.norm,
        });
        consumed.push(sha.clone());
    }
    if members.len() < min_deltas.max(1) {
        return Ok(Outcome::Waiting {
            fresh: members.len(),
            min_deltas,
        });
    }
    clip_to_median(&mut members);

    let bar = progress_bar(skill, &members);
    let mean = weighted_mean(&members, decoding, &mut |_, bytes| bar.inc(bytes))?;
    bar.finish_and_clear();

    let mut adapter = project.global_adapter(&manifest, current)?;
    let (mut moments, rounds) = read_optimizer(project, skill, current, strategy)?;
    let optimizer = strategy.optimizer_with(server_lr);
    for (name, (_, pseudo_gradient)) in &mean {
        let t = adapter
            .tensors
            .get(name)
            .with_context(|| format!("delta names unknown factor {name}"))?;
        let mut x = t.flatten_all()?.to_vec1::<f32>()?;
        optimizer.step(
            &mut x,
            pseudo_gradient,
            moments.entry(name.clone()).or_default(),
            rounds + 1,
        );
        adapter
            .tensors
            .insert(name.clone(), Tensor::from_vec(x, t.dims(), &Device::Cpu)?);
    }
    adapter.header = Project::adapter_header(&manifest, next);
    drop(mean);

    // Commit: optimizer state, the signed and sealed adapter under a temporary name; the round
    // record; the rename of the adapter; then the clean-up of the queue.
    let storage = project.storage_key()?;
    write_optimizer(
        project,
        &storage,
        skill,
        next,
        strategy,
        rounds + 1,
        moments,
    )?;
    fault::point("aggregate:optimizer-written");
    let key = aginet::format::signed::read_signing_key(&project.signing_key())?;
    let bytes = adapter.to_signed_bytes(&key)?;
    drop(adapter);
    let final_path = project.adapter(skill, next);
    let pending = final_path.with_extension("sealed.pending");
    storage.write_file(
        &pending,
        &Project::sealed_role(skill, "adapter", next),
        &bytes,
    )?;
    fault::point("aggregate:adapter-pending");
    let round = Round {
        version: next,
        strategy,
        consumed,
        dropped,
    };
    let rounds_dir = rounds_dir(project, skill);
    std::fs::create_dir_all(&rounds_dir).with_context(|| format!("{}", rounds_dir.display()))?;
    write_atomic(
        &rounds_dir.join(format!("v{next:06}.json")),
        serde_json::to_string_pretty(&round)?.as_bytes(),
    )?;
    fault::point("aggregate:round-recorded");
    std::fs::rename(&pending, &final_path).with_context(|| format!("{}", final_path.display()))?;
    fault::point("aggregate:committed");
    finish_committed_round(project, skill)?;
    Ok(Outcome::NewVersion {
        version: next,
        deltas: round.consumed.len(),
        dropped: round.dropped.len(),
        choice,
    })
}

/// Scales every delta whose norm exceeds `CLIP_FACTOR ×` the cohort's median down to that bound.
fn clip_to_median(members: &mut [Member]) {
    let mut norms: Vec<f64> = members.iter().map(|m| m.norm).collect();
    norms.sort_by(f64::total_cmp);
    let clip = norms.get(norms.len() / 2).copied().unwrap_or(0.0) * CLIP_FACTOR;
    for m in members.iter_mut() {
        if m.norm > clip && m.norm > 0.0 {
            m.scale = clip / m.norm;
        }
    }
}

/// A progress bar over the cohort's bytes, drawn only when stderr is a terminal.
fn progress_bar(skill: &str, members: &[Member]) -> indicatif::ProgressBar {
    let total: u64 = members
        .iter()
        .filter_map(|m| std::fs::metadata(&m.path).ok())
        .map(|m| m.len())
        .sum();
    indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    )
    .with_style(
        indicatif::ProgressStyle::with_template(
            "  {msg} {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("a valid template"),
    )
    .with_message(format!("{skill}: {} deltas", members.len()))
}

/// Removes from the queue the deltas the newest committed round consumed (or dropped).
fn finish_committed_round(project: &Project, skill: &str) -> Result<()> {
    let version = project.adapter_version(skill)?;
    if version == 0 {
        return Ok(());
    }
    let path = rounds_dir(project, skill).join(format!("v{version:06}.json"));
    let round: Round = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("{}", path.display()))?,
    )
    .with_context(|| format!("{}", path.display()))?;
    let queue = project.queue(skill);
    for (i, sha) in round.consumed.iter().chain(&round.dropped).enumerate() {
        queue::remove(&queue, sha)?;
        if i == 0 {
            fault::point("aggregate:cleanup-started");
        }
    }
    Ok(())
}

const OPTIMIZER_FORMAT: &str = "aginet-server-optimizer";

fn read_optimizer(
    project: &Project,
    skill: &str,
    version: u64,
    strategy: Strategy,
) -> Result<(BTreeMap<String, Moments>, u64)> {
    let path = optimizer_path(project, skill, version);
    if version == 0 || !path.exists() {
        return Ok((BTreeMap::new(), 0));
    }
    let bytes = project
        .storage_key()?
        .read_file(&path, &Project::sealed_role(skill, "optimizer", version))?;
    let (meta, all) =
        tensors::decode(&bytes).map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
    let header: OptimizerHeader = tensors::parse_header(&meta, OPTIMIZER_FORMAT, 1)
        .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
    if header.strategy != strategy {
        // A new strategy starts its own state.
        return Ok((BTreeMap::new(), 0));
    }
    let mut moments: BTreeMap<String, Moments> = BTreeMap::new();
    for (name, t) in all {
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        if let Some(n) = name.strip_prefix("m/") {
            moments.entry(n.to_string()).or_default().m = values;
        } else if let Some(n) = name.strip_prefix("v/") {
            moments.entry(n.to_string()).or_default().v = values;
        }
    }
    Ok((moments, header.rounds))
}

fn write_optimizer(
    project: &Project,
    storage: &StorageKey,
    skill: &str,
    version: u64,
    strategy: Strategy,
    rounds: u64,
    moments: BTreeMap<String, Moments>,
) -> Result<()> {
    let mut all = NamedTensors::new();
    for (name, mo) in moments {
        for (prefix, values) in [("m", mo.m), ("v", mo.v)] {
            if !values.is_empty() {
                let n = values.len();
                all.insert(
                    format!("{prefix}/{name}"),
                    Tensor::from_vec(values, n, &Device::Cpu)?,
                );
            }
        }
    }
    let header = OptimizerHeader {
        format: OPTIMIZER_FORMAT.into(),
        version: 1,
        strategy,
        rounds,
    };
    let path = optimizer_path(project, skill, version);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    }
    storage.write_file(
        &path,
        &Project::sealed_role(skill, "optimizer", version),
        &tensors::encode(&all, &header)?,
    )
}
