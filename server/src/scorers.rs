//! The skills' scorers, each loaded on first use and kept: the validator's models. A one-shot
//! `validate` starts empty and loads the base of the result's skill once; the resident
//! `validator` keeps them between results, reloading a skill's only when its manifest changed.

use crate::project::Project;
use aginet::format::manifest::Manifest;
use aginet::format::tensors::NamedTensors;
use aginet::learn::score::{Scorer, Skill};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// A skill's scorer and the manifest it was loaded for.
struct Loaded {
    manifest: Manifest,
    scorer: Scorer,
}

/// Loaded scorers by skill name.
#[derive(Default)]
pub struct Scorers {
    loaded: HashMap<String, Loaded>,
}

impl Scorers {
    /// No scorer loaded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The reward of `manifest`'s base with adapter `factors` on each file of `datasets`: the
    /// same bits as [`Project::rewards_on`], without loading the base again when it is loaded.
    pub fn rewards(
        &mut self,
        project: &Project,
        manifest: &Manifest,
        factors: &NamedTensors,
        datasets: &[&Path],
    ) -> Result<Vec<f64>> {
        let fresh = self
            .loaded
            .get(&manifest.name)
            .is_some_and(|l| l.manifest == *manifest);
        if !fresh {
            let start = Instant::now();
            let base = project.base(&manifest.name);
            let scorer = Scorer::load(&base, &Skill::of(manifest), factors)
                .with_context(|| format!("loading {}", base.display()))?;
            tracing::debug!(
                "loaded the {} base in {:.2} s",
                manifest.name,
                start.elapsed().as_secs_f64()
            );
            self.loaded.insert(
                manifest.name.clone(),
                Loaded {
                    manifest: manifest.clone(),
                    scorer,
                },
            );
        }
        let loaded = self.loaded.get_mut(&manifest.name).expect("just loaded");
        Ok(loaded.scorer.rewards(factors, datasets)?)
    }

    /// [`Scorers::rewards`] on one data file.
    pub fn reward(
        &mut self,
        project: &Project,
        manifest: &Manifest,
        factors: &NamedTensors,
        data: &Path,
    ) -> Result<f64> {
        Ok(self.rewards(project, manifest, factors, &[data])?[0])
    }

    /// [`Project::version_reward`] of `skill`'s global `version`, computed here when it is not
    /// cached yet.
    pub fn version_reward(&mut self, project: &Project, skill: &str, version: u64) -> Result<f64> {
        project.version_reward_by(skill, version, |m, f| {
            self.reward(project, m, f, &project.held_out(&m.name))
        })
    }

    /// Forgets every loaded scorer (after a failure that may have left one half-written).
    pub fn clear(&mut self) {
        self.loaded.clear();
    }
}
