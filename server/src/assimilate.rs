//! `assimilate`: BOINC's `script_assimilator`. Moves a validated delta into its skill's queue
//! and logs the result, with its credit, to the scoreboard; `--error N` logs a failed work unit.
//!
//! Every step is idempotent, so a crash and a rerun count the delta exactly once: the queue
//! files are named by the delta's sha256 and written atomically, the sha256 is added to
//! `state/seen_deltas` only if absent, and the scoreboard gets a row only if none names this
//! work unit and result yet.
//!
//! Credit, in BOINC's cobblestones (1 = 1/200 of a day at 1 GFLOPS = 4.32e11 FLOP):
//! `4 · N · T / 4.32e11`, where N is the base's parameter count and T the tokens trained (a
//! forward and an input-gradient pass through the frozen base cost about 2·N FLOP per token
//! each). T is the report's count, capped at `steps · batch_size · max_seq_len`, the most the
//! work unit allows (steps capped by the skill's budget); T also weighs the delta in aggregation. Only valid work earns credit.

use crate::fault;
use crate::project::Project;
use crate::queue;
use crate::scoreboard::{self, Row};
use crate::scorers::Scorers;
use crate::validate::{self, Verdict};
use aginet::format::files::{sha256_hex, write_atomic};
use aginet::format::report::Report;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// FLOP in one cobblestone.
const FLOP_PER_CREDIT: f64 = 4.32e11;

/// What `assimilate` did.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Queued and logged, with this credit.
    Accepted {
        /// Credit granted.
        credit: f64,
    },
    /// Logged as invalid, no credit.
    Rejected(String),
    /// Already assimilated earlier: nothing to do.
    AlreadyDone,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who returned a result and what BOINC credited it, when known (`assimilate --boinc` reads
/// them from BOINC's database; the demo passes its volunteers' names).
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// The volunteer's host.
    pub host: String,
    /// The volunteer.
    pub user: String,
    /// The credit BOINC granted the result (its validator's): logged instead of the formula's,
    /// so the scoreboard and BOINC keep one ledger.
    pub granted_credit: Option<f64>,
}

/// Assimilates the canonical result of work unit `wu` (files: its delta and report),
/// validating it with `scorers` when the validator left no verdict.
pub fn assimilate(
    project: &Project,
    scorers: &mut Scorers,
    files: &[PathBuf],
    wu: &str,
    source: &Source,
) -> Result<Outcome> {
    let (delta_path, report_path) = validate::identify(files).map_err(anyhow::Error::msg)?;
    let report = Report::read(&report_path)?;
    let bytes = std::fs::read(&delta_path).with_context(|| format!("{}", delta_path.display()))?;
    let sha = sha256_hex(&bytes);
    let result = delta_path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let sb = project.scoreboard();
    if scoreboard::read(&sb)?
        .iter()
        .any(|r| r.workunit == wu && r.result == result)
    {
        return Ok(Outcome::AlreadyDone);
    }
    let verdict = match std::fs::read(project.verdict(&sha)) {
        Ok(json) => serde_json::from_slice(&json).context("verdict file")?,
        Err(_) => validate::validate(project, scorers, files)?,
    };
    let mut row = Row {
        time: now(),
        workunit: wu.to_string(),
        result,
        host: source.host.clone(),
        user: source.user.clone(),
        skill: report.skill.clone(),
        claimed_reward: report.reward_after,
        reward_before: f64::NAN,
        reward_after: f64::NAN,
        verdict: "invalid".into(),
        reason: String::new(),
        credit: 0.0,
    };
    let (reward_before, reward_after, norm) = match verdict {
        Verdict::Valid {
            reward_before,
            reward_after,
            delta_norm,
        } => (reward_before, reward_after, delta_norm),
        Verdict::Invalid(reason) => {
            row.reason = reason.clone();
            scoreboard::append(&sb, &row)?;
            return Ok(Outcome::Rejected(reason));
        }
    };

    let tokens = capped_tokens(project, &report)?;
    let entry = queue::Entry {
        adapter_version: report.adapter_version,
        tokens,
        norm,
    };
    let report_bytes =
        std::fs::read(&report_path).with_context(|| format!("{}", report_path.display()))?;
    queue::put(
        &project.queue(&report.skill),
        &sha,
        &bytes,
        &report_bytes,
        &entry,
    )?;
    fault::point("assimilate:queued");
    mark_seen(project, &sha)?;
    fault::point("assimilate:seen");

    let credit = match source.granted_credit {
        Some(granted) => granted,
        None => credit(project, &report.skill, tokens)?,
    };
    row.reward_before = reward_before;
    row.reward_after = reward_after;
    row.verdict = "valid".into();
    row.reason = "accepted".into();
    row.credit = credit;
    scoreboard::append(&sb, &row)?;
    Ok(Outcome::Accepted { credit })
}

/// Logs a work unit BOINC gave up on (`--error N`): no credit.
pub fn record_error(project: &Project, code: i32, wu: &str) -> Result<()> {
    let sb = project.scoreboard();
    let reason = format!("BOINC error {code}");
    if scoreboard::read(&sb)?
        .iter()
        .any(|r| r.workunit == wu && r.reason == reason)
    {
        return Ok(());
    }
    let row = Row {
        time: now(),
        workunit: wu.to_string(),
        result: String::new(),
        host: String::new(),
        user: String::new(),
        skill: wu.split('_').next().unwrap_or_default().to_string(),
        claimed_reward: f64::NAN,
        reward_before: f64::NAN,
        reward_after: f64::NAN,
        verdict: "error".into(),
        reason,
        credit: 0.0,
    };
    scoreboard::append(&sb, &row)
}

/// Adds `sha` to the accepted-delta list unless it is there already.
fn mark_seen(project: &Project, sha: &str) -> Result<()> {
    let path = project.seen_deltas();
    let mut text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
    };
    if !text.lines().any(|l| l.trim() == sha) {
        text.push_str(sha);
        text.push('\n');
        write_atomic(&path, text.as_bytes())?;
    }
    Ok(())
}

/// The report's tokens, capped at the most the work unit allows (`steps · batch_size ·
/// max_seq_len`, with the skill's step budget capping the report's steps).
fn capped_tokens(project: &Project, report: &Report) -> Result<u64> {
    let manifest = project.manifest(&report.skill)?;
    let h = &manifest.defaults.hyper;
    let steps = report.steps.min(manifest.defaults.steps);
    let cap = steps as u64 * (h.batch_size * h.max_seq_len) as u64;
    Ok(report.tokens.min(cap))
}

/// The credit of `tokens` trained on `skill` (see the module doc for the formula).
pub fn credit(project: &Project, skill: &str, tokens: u64) -> Result<f64> {
    let n = aginet::format::gguf::Gguf::open(&project.base(skill))?.parameter_count() as f64;
    Ok(4.0 * n * tokens as f64 / FLOP_PER_CREDIT)
}
