//! `make-work --out DIR`: work-unit folders holding the input files under their logical names
//! (`config`, `model`, `adapter` when past version 0, `data`, and `project_key`, which under
//! BOINC is a file of the app version), the way `aginet run --dir` and the client's slot see
//! them.
//!
//! A work unit's data is a shard drawn from the skill's training pool by a ChaCha8 shuffle
//! seeded with the work-unit number (and the project's `shard_seed`, when set): `shard_size` training lines, then `eval_size` lines marked
//! `eval` for the app's own before/after check, of which the server keeps a copy
//! (`state/workunits/<n>.eval.jsonl`) to check the rewards the app claims. Held-out data never
//! goes into a work unit.
//! Each folder is written under a temporary name and renamed into place, so a crash never
//! leaves a half-made work unit.

use crate::project::Project;
use aginet::format::files::write_atomic;
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// Makes `count` work units of `skill` in `out`; returns their folders.
pub fn make_work(project: &Project, skill: &str, count: u64, out: &Path) -> Result<Vec<PathBuf>> {
    let manifest = project.manifest(skill)?;
    let version = project.adapter_version(skill)?;
    let pool_path = project.train_pool(skill);
    let pool =
        std::fs::read_to_string(&pool_path).with_context(|| format!("{}", pool_path.display()))?;
    let lines: Vec<&str> = pool.lines().filter(|l| !l.trim().is_empty()).collect();
    let work = &project.settings.work;
    let shard_size = manifest.task.shard_size.unwrap_or(work.shard_size);
    let eval_size = manifest.task.eval_size.unwrap_or(work.eval_size);
    if lines.len() < shard_size + eval_size {
        bail!(
            "{}: {} examples, fewer than a shard needs ({shard_size} + {eval_size})",
            pool_path.display(),
            lines.len(),
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    let published = if version > 0 {
        project.published_adapter(skill, version)?
    } else {
        PathBuf::new()
    };
    let mut made = Vec::new();
    for n in project.take_workunit_numbers(count)? {
        let name = format!("{skill}_v{version}_{n:06}");
        let dir = out.join(&name);
        let tmp = out.join(format!(".{name}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("{}", tmp.display()))?;
        }
        std::fs::create_dir_all(&tmp).with_context(|| format!("{}", tmp.display()))?;

        let config = manifest.work_config(n, version);
        write_atomic(&tmp.join("config"), config.to_json().as_bytes())?;
        link_or_copy(&project.base(skill), &tmp.join("model"))?;
        std::fs::copy(project.public_key(), tmp.join("project_key"))
            .with_context(|| format!("copying {}", project.public_key().display()))?;
        if version > 0 {
            link_or_copy(&published, &tmp.join("adapter"))?;
        }
        let seed = shard_draw_seed(work.shard_seed, n);
        let (data, eval) = shard(&lines, seed, shard_size, eval_size)?;
        // The server's copy of the eval split, on which the validator checks the claimed reward.
        let record = project.workunit_eval(n);
        std::fs::create_dir_all(record.parent().expect("a parent folder"))
            .with_context(|| format!("{}", record.display()))?;
        write_atomic(&record, eval.as_bytes())?;
        write_atomic(&tmp.join("data"), data.as_bytes())?;

        std::fs::rename(&tmp, &dir)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
        made.push(dir);
    }
    Ok(made)
}

/// The seed of work unit `n`'s shard draw: `n` itself when the project's seed is 0, else `n`
/// moved by a large odd multiple of the project's seed.
fn shard_draw_seed(project_seed: u64, n: u64) -> u64 {
    n.wrapping_add(project_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The data shard drawn with `seed` (`size` training lines and `eval` eval lines), and its eval
/// lines alone.
fn shard(lines: &[&str], seed: u64, size: usize, eval: usize) -> Result<(String, String)> {
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut out = String::new();
    let mut eval_only = String::new();
    for (i, &idx) in order.iter().take(size + eval).enumerate() {
        let mut example: serde_json::Value = serde_json::from_str(lines[idx])
            .with_context(|| format!("training pool line {}", idx + 1))?;
        let split = if i < size { "train" } else { "eval" };
        example["split"] = serde_json::Value::String(split.into());
        let line = format!("{example}\n");
        if i >= size {
            eval_only.push_str(&line);
        }
        out.push_str(&line);
    }
    Ok((out, eval_only))
}

/// Hard-links `from` to `to` (the base is shared by every work unit), copying across devices.
pub(crate) fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Vec<String> {
        (0..100).map(|i| format!("{{\"i\":{i}}}")).collect()
    }

    #[test]
    fn seed_zero_draws_as_before_and_other_seeds_draw_other_shards() {
        let lines = pool();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        for n in [0u64, 1, 7] {
            assert_eq!(
                shard_draw_seed(0, n),
                n,
                "projects without a seed keep their shards"
            );
            let plain = shard(&lines, shard_draw_seed(0, n), 10, 2).unwrap();
            let again = shard(&lines, shard_draw_seed(0, n), 10, 2).unwrap();
            let seeded = shard(&lines, shard_draw_seed(1, n), 10, 2).unwrap();
            assert_eq!(plain, again, "a draw is deterministic");
            assert_ne!(
                plain, seeded,
                "seed 1 draws another shard for work unit {n}"
            );
        }
        assert_ne!(shard_draw_seed(1, 0), shard_draw_seed(2, 0));
    }

    #[test]
    fn a_project_toml_without_shard_seed_reads_as_seed_zero() {
        let settings = Project::default_settings(vec!["tiny".into()]);
        let text = toml::to_string_pretty(&settings).unwrap();
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("shard_seed"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(!old.contains("shard_seed"));
        let read: crate::project::Settings = toml::from_str(&old).unwrap();
        assert_eq!(read.work.shard_seed, 0);
        assert_eq!(read, settings);
    }
}
