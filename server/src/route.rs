//! `route`: which skill gets the next work, and why.
//!
//! Rewards are not comparable across skills, so each valid result is scored by its relative
//! improvement on held-out data, `(reward_after − reward_before) / reward_before`, both
//! recomputed by the server. Then, in order:
//! 1. a skill with no valid result yet is explored first;
//! 2. a skill whose share of the last `window` results is below `min_share` is served (no skill
//!    starves);
//! 3. otherwise UCB1: the highest `mean improvement + exploration · √(ln N / n)`.
//!
//! Ties are broken by a ChaCha8 RNG seeded from the settings and the scoreboard length, so the
//! same scoreboard and settings always give the same answer.

use crate::project::{Project, RouteSettings};
use crate::scoreboard::{self, Row};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The router's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The skill that gets the next work.
    pub skill: String,
    /// Why, in one line.
    pub reason: String,
}

/// The router's decision for `project`, from its scoreboard and settings.
pub fn decide(project: &Project) -> anyhow::Result<Decision> {
    let rows = scoreboard::read(&project.scoreboard())?;
    Ok(route(
        &project.settings.skills,
        &rows,
        &project.settings.route,
    ))
}

/// Per-skill statistics of valid results.
struct Stats {
    n: usize,
    mean_gain: f64,
    recent_share: f64,
}

fn stats(skill: &str, rows: &[Row], window: usize) -> Stats {
    let gains: Vec<f64> = rows
        .iter()
        .filter(|r| r.skill == skill && r.verdict == "valid")
        .map(|r| (r.reward_after - r.reward_before) / r.reward_before.max(1e-12))
        .collect();
    let recent = &rows[rows.len().saturating_sub(window)..];
    let share = if recent.is_empty() {
        0.0
    } else {
        recent.iter().filter(|r| r.skill == skill).count() as f64 / recent.len() as f64
    };
    let mean_gain = if gains.is_empty() {
        0.0
    } else {
        gains.iter().sum::<f64>() / gains.len() as f64
    };
    Stats {
        n: gains.len(),
        mean_gain,
        recent_share: share,
    }
}

/// Picks the skill for the next work unit among `skills` (non-empty).
pub fn route(skills: &[String], rows: &[Row], settings: &RouteSettings) -> Decision {
    let mut order: Vec<&String> = skills.iter().collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(
        settings.seed ^ rows.len() as u64,
    ));
    let all: Vec<(&String, Stats)> = order
        .into_iter()
        .map(|s| (s, stats(s, rows, settings.window)))
        .collect();

    if let Some((skill, _)) = all.iter().find(|(_, st)| st.n == 0) {
        return Decision {
            skill: skill.to_string(),
            reason: "no valid result yet: exploring".into(),
        };
    }
    let full_window = rows.len() >= settings.window.min(skills.len() * 2);
    if full_window {
        let starving = all
            .iter()
            .filter(|(_, st)| st.recent_share < settings.min_share)
            .min_by(|a, b| a.1.recent_share.total_cmp(&b.1.recent_share));
        if let Some((skill, st)) = starving {
            return Decision {
                skill: skill.to_string(),
                reason: format!(
                    "share {:.3} of the last {} results is below min_share {}",
                    st.recent_share, settings.window, settings.min_share
                ),
            };
        }
    }
    let total: usize = all.iter().map(|(_, st)| st.n).sum();
    let ucb = |st: &Stats| {
        st.mean_gain + settings.exploration * ((total as f64).ln() / st.n as f64).sqrt()
    };
    let (skill, st) = all
        .iter()
        .max_by(|a, b| ucb(&a.1).total_cmp(&ucb(&b.1)))
        .expect("at least one skill");
    Decision {
        skill: skill.to_string(),
        reason: format!(
            "highest UCB score {:.4} (mean relative improvement {:.4} over {} valid results)",
            ucb(st),
            st.mean_gain,
            st.n
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RouteSettings {
        RouteSettings {
            exploration: 0.5,
            min_share: 0.1,
            window: 20,
            seed: 3,
        }
    }

    fn row(skill: &str, before: f64, after: f64, verdict: &str) -> Row {
        Row {
            time: 0,
            workunit: "wu".into(),
            result: "r".into(),
            host: String::new(),
            user: String::new(),
            skill: skill.into(),
            claimed_reward: after,
            reward_before: before,
            reward_after: after,
            verdict: verdict.into(),
            reason: String::new(),
            credit: 0.0,
        }
    }

    fn skills() -> Vec<String> {
        vec!["language".into(), "planner".into()]
    }

    #[test]
    fn explores_a_skill_without_valid_results() {
        let rows: Vec<Row> = (0..10)
            .map(|_| row("language", 0.1, 0.2, "valid"))
            .collect();
        let mut with_invalid = rows.clone();
        with_invalid.push(row("planner", 0.1, 0.9, "invalid"));
        let d = route(&skills(), &with_invalid, &settings());
        assert_eq!(d.skill, "planner", "{d:?}");
        assert!(d.reason.contains("exploring"));
    }

    #[test]
    fn serves_a_starving_skill() {
        // planner has one valid result but only 1 of the last 20: share 0.05 < 0.1.
        let mut rows = vec![row("planner", 0.1, 0.1, "valid")];
        rows.extend((0..19).map(|_| row("language", 0.1, 0.5, "valid")));
        let d = route(&skills(), &rows, &settings());
        assert_eq!(d.skill, "planner", "{d:?}");
        assert!(d.reason.contains("below min_share"));
    }

    #[test]
    fn ucb_prefers_the_larger_relative_improvement() {
        // language: (0.3 - 0.2) / 0.2 = 0.5 per result; planner: (0.55 - 0.5) / 0.5 = 0.1.
        let mut rows = Vec::new();
        for _ in 0..10 {
            rows.push(row("language", 0.2, 0.3, "valid"));
            rows.push(row("planner", 0.5, 0.55, "valid"));
        }
        let d = route(&skills(), &rows, &settings());
        assert_eq!(d.skill, "language", "{d:?}");
        // Hand-computed: 0.5 + 0.5 * sqrt(ln 20 / 10) = 0.5 + 0.5 * 0.54733 = 0.77366.
        assert!(d.reason.contains("0.7737"), "{d:?}");
    }

    #[test]
    fn exploration_bonus_lifts_a_rarely_tried_skill() {
        // planner's mean gain is lower, but 2 tries against 40 give it the larger bonus.
        let mut rows: Vec<Row> = (0..40)
            .map(|_| row("language", 0.2, 0.22, "valid"))
            .collect();
        rows.insert(0, row("planner", 0.5, 0.52, "valid"));
        rows.insert(0, row("planner", 0.5, 0.52, "valid"));
        let s = RouteSettings {
            window: 1000,
            min_share: 0.0,
            ..settings()
        };
        let d = route(&skills(), &rows, &s);
        assert_eq!(d.skill, "planner", "{d:?}");
    }

    #[test]
    fn same_scoreboard_and_seed_give_the_same_answer() {
        let rows: Vec<Row> = Vec::new();
        let a = route(&skills(), &rows, &settings());
        assert_eq!(a, route(&skills(), &rows, &settings()));
        let picks: std::collections::BTreeSet<String> = (0..16)
            .map(|seed| route(&skills(), &rows, &RouteSettings { seed, ..settings() }).skill)
            .collect();
        assert_eq!(
            picks.len(),
            2,
            "the seed breaks ties, so different seeds pick different skills"
        );
    }
}
