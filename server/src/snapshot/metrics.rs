//! `metrics.json`: what the project has done, per skill and per night, computed from the
//! scoreboard, the round records and the held-out reward of every global version.
//!
//! A version's reward comes from the project's cache ([`Project::version_reward`]).

use crate::aggregate::Round;
use crate::project::Project;
use crate::scoreboard::{self, Row};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `metrics.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Metrics {
    /// Always `aginet-metrics`.
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// When the snapshot was taken, unix seconds.
    pub generated: u64,
    /// Per skill.
    pub skills: Vec<SkillMetrics>,
    /// Per UTC day with decided results, oldest first.
    pub nights: Vec<Night>,
}

/// One skill's history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SkillMetrics {
    /// The skill.
    pub skill: String,
    /// Its newest global version.
    pub current_version: u64,
    /// Every version with its held-out reward and the round that made it.
    pub versions: Vec<VersionMetrics>,
    /// Results accepted.
    pub accepted: u64,
    /// Results rejected by the validator.
    pub rejected: u64,
    /// Work units BOINC gave up on.
    pub errors: u64,
    /// Credit granted.
    pub credit: f64,
}

/// One global version.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionMetrics {
    /// The version.
    pub version: u64,
    /// The server's held-out reward of it.
    pub reward: f64,
    /// Deltas the round aggregated (0 for version 0).
    pub deltas: usize,
    /// The strategy of that round (none for version 0).
    pub strategy: Option<String>,
}

/// One night of results.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Night {
    /// The UTC date, `YYYY-MM-DD`.
    pub night: String,
    /// Results accepted.
    pub accepted: u64,
    /// Results rejected, by reason class ([`reason_class`]).
    pub rejected: BTreeMap<String, u64>,
    /// Work units BOINC gave up on.
    pub errors: u64,
    /// Credit granted.
    pub credit: f64,
    /// Distinct known hosts that returned valid work.
    pub active_hosts: u64,
}

/// The class of a rejection reason, for counting: the validator's reasons name files and
/// values, which would make every reason its own class.
pub fn reason_class(reason: &str) -> &'static str {
    const CLASSES: [(&str, &str); 10] = [
        ("sha256", "forged hash"),
        ("non-finite", "NaN or infinite values"),
        ("L2 norm", "norm too large"),
        ("replay", "replay"),
        ("stale", "stale version"),
        ("unknown", "unknown version or skill"),
        ("held-out reward", "held-out reward too low"),
        ("shape", "wrong shapes"),
        ("BOINC error", "client error"),
        ("tensor", "wrong tensors"),
    ];
    CLASSES
        .iter()
        .find(|(key, _)| reason.contains(key))
        .map_or("unreadable or malformed", |(_, class)| class)
}

/// Computes the metrics of `project`.
pub fn compute(project: &Project, now: u64) -> Result<Metrics> {
    let rows = scoreboard::read(&project.scoreboard())?;
    let mut skills = Vec::new();
    for skill in &project.settings.skills {
        skills.push(skill_metrics(project, skill, &rows)?);
    }
    Ok(Metrics {
        format: "aginet-metrics".into(),
        version: 1,
        generated: now,
        skills,
        nights: nights(&rows),
    })
}

fn skill_metrics(project: &Project, skill: &str, rows: &[Row]) -> Result<SkillMetrics> {
    let current = project.adapter_version(skill)?;
    let mut versions = Vec::new();
    for version in 0..=current {
        let round = if version == 0 {
            None
        } else {
            let path = project
                .skill_dir(skill)
                .join("rounds")
                .join(format!("v{version:06}.json"));
            let bytes = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
            Some(
                serde_json::from_slice::<Round>(&bytes)
                    .with_context(|| format!("{}", path.display()))?,
            )
        };
        versions.push(VersionMetrics {
            version,
            reward: project.version_reward(skill, version)?,
            deltas: round.as_ref().map_or(0, |r| r.consumed.len()),
            strategy: round.map(|r| format!("{:?}", r.strategy).to_lowercase()),
        });
    }
    let mine = rows.iter().filter(|r| r.skill == skill);
    let count = |verdict: &str| mine.clone().filter(|r| r.verdict == verdict).count() as u64;
    Ok(SkillMetrics {
        skill: skill.to_string(),
        current_version: current,
        versions,
        accepted: count("valid"),
        rejected: count("invalid"),
        errors: count("error"),
        credit: mine.clone().map(|r| r.credit).sum(),
    })
}

/// The scoreboard grouped by UTC day.
fn nights(rows: &[Row]) -> Vec<Night> {
    let mut by_night: BTreeMap<String, (Night, BTreeSet<String>)> = BTreeMap::new();
    for row in rows {
        let night = utc_date(row.time);
        let (n, hosts) = by_night.entry(night.clone()).or_default();
        n.night = night;
        n.credit += row.credit;
        match row.verdict.as_str() {
            "valid" => {
                n.accepted += 1;
                if !row.host.is_empty() {
                    hosts.insert(row.host.clone());
                }
            }
            "error" => n.errors += 1,
            _ => {
                *n.rejected
                    .entry(reason_class(&row.reason).into())
                    .or_default() += 1
            }
        }
    }
    by_night
        .into_values()
        .map(|(mut n, hosts)| {
            n.active_hosts = hosts.len() as u64;
            n
        })
        .collect()
}

/// `YYYY-MM-DD` of a unix time, UTC.
pub fn utc_date(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map_or_else(|| "unknown".into(), |t| t.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_by_hand() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_795_651_200), "2026-11-26");
    }

    #[test]
    fn reasons_fall_into_classes() {
        assert_eq!(
            reason_class("delta: sha256 differs from the report's"),
            "forged hash"
        );
        assert_eq!(
            reason_class("tensor x holds a non-finite value (NaN)"),
            "NaN or infinite values"
        );
        assert_eq!(
            reason_class("replay: delta ab was already accepted"),
            "replay"
        );
        assert_eq!(reason_class("not a zstd frame"), "unreadable or malformed");
    }
}
