//! `init --project DIR`: a new project folder with its keys, its skills (manifest, base, data
//! pools) and an empty scoreboard. A base missing from the models folder is made when the
//! project's own tools can make it from what is there: the tiny model from its seed, the memory
//! skill's encoder from `models/minilm/model` (`models/minilm/fetch.sh`), the language and
//! planner skills' Gemma 3 base from `models/gemma3-270m/` (`models/gemma3-270m/fetch.sh`).

use crate::project::Project;
use crate::scoreboard;
use aginet::format::config::Architecture;
use aginet::format::files::{sha256_file, sha256_hex, write_atomic};
use aginet::format::manifest::Manifest;
use aginet::task::Split;
use anyhow::{bail, Context, Result};
use candle_core::quantized::GgmlDType;
use std::path::Path;

/// Creates the project at `root` for `skills` (every skill under `models` when empty), drawing
/// its work units' shards with `shard_seed` (`[work]` in `project.toml`).
pub fn init(root: &Path, models: &Path, skills: &[String], shard_seed: u64) -> Result<Project> {
    if root.join("project.toml").exists() {
        bail!("{}: already an agiNet project", root.display());
    }
    let skills = if skills.is_empty() {
        skills_in(models)?
    } else {
        skills.to_vec()
    };
    if skills.is_empty() {
        bail!("{}: no skill manifests found", models.display());
    }
    for dir in ["keys", "state", "skills"] {
        std::fs::create_dir_all(root.join(dir))
            .with_context(|| format!("{}", root.join(dir).display()))?;
    }
    write_keys(&root.join("keys"))?;
    write_atomic(&root.join("state").join("next_workunit"), b"0\n")?;
    scoreboard::create(&root.join("scoreboard.csv"))?;
    let mut settings = Project::default_settings(skills.clone());
    settings.work.shard_seed = shard_seed;
    for skill in &skills {
        add_skill(root, models, skill)?;
    }
    // Written last: a project is only valid once everything above exists.
    settings.write(root)?;
    Project::open(root)
}

/// The skills with a manifest under `models`, sorted.
fn skills_in(models: &Path) -> Result<Vec<String>> {
    let mut skills = Vec::new();
    for entry in std::fs::read_dir(models).with_context(|| format!("{}", models.display()))? {
        let entry = entry?;
        if entry.path().join("manifest.toml").exists() {
            skills.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    skills.sort();
    Ok(skills)
}

/// Fresh keys: the ed25519 pair `signing.key` (secret) and `signing.pub`, and the archive's
/// `storage.key`; all hex, secrets mode 0600.
fn write_keys(keys: &Path) -> Result<()> {
    let secret = write_secret(&keys.join("signing.key"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    write_atomic(
        &keys.join("signing.pub"),
        hex::encode(key.verifying_key().to_bytes()).as_bytes(),
    )?;
    write_secret(&keys.join("storage.key"))?;
    Ok(())
}

/// 32 random bytes written as hex to `path`, readable by the owner only.
fn write_secret(path: &Path) -> Result<[u8; 32]> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    aginet::format::files::write_atomic_private(path, hex::encode(secret).as_bytes())?;
    Ok(secret)
}

/// The recipe's conversion of the fetched Gemma 3 270M (`models/gemma3-270m/fetch.sh`) into
/// `shipped`, the base the manifest of `skill` names; fails naming the fetch script when the
/// fetched GGUF is missing too.
fn make_gemma_base(models: &Path, skill: &str, shipped: &Path, recipe: &str) -> Result<()> {
    let fetched = models.join(GEMMA_SOURCE);
    if !fetched.exists() {
        bail!(
            "{}: missing, and so is {}, which it is made from: run models/gemma3-270m/fetch.sh \
             (ci/setup.sh does), or make the base with: {recipe}",
            shipped.display(),
            fetched.display(),
        );
    }
    tracing::info!(
        "skill {skill}: making its base {} from {} (the manifest's recipe)",
        shipped.display(),
        fetched.display()
    );
    let done = crate::convert::convert(&fetched, shipped)?;
    tracing::info!(
        "skill {skill}: {} tensors rewritten from Q5_0 to Q8_0 ({} blocks rounded)",
        done.tensors,
        done.inexact_blocks
    );
    Ok(())
}

/// Where `models/minilm/fetch.sh` puts the memory skill's encoder, under the models folder.
const MINILM_SOURCE: &str = "minilm/model";

/// Where `models/gemma3-270m/fetch.sh` puts Gemma 3 270M, which the language and planner
/// skills' base is converted from.
const GEMMA_SOURCE: &str = "gemma3-270m/gemma-3-270m-q4_k_m.gguf";

/// Copies the manifest, installs the base (checking its sha256) and the data pools of `skill`.
fn add_skill(root: &Path, models: &Path, skill: &str) -> Result<()> {
    let manifest_path = Manifest::path(models, skill);
    let manifest = Manifest::read(&manifest_path)?;
    // A `[server]` table `aggregate` could not use fails here, not on the night it runs.
    crate::strategy::Choice::resolve(&manifest, &manifest_path, None, None)?;
    let dir = root.join("skills").join(skill);
    for sub in ["data", "adapters", "queue"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("{}", dir.join(sub).display()))?;
    }
    std::fs::copy(&manifest_path, dir.join("manifest.toml"))
        .with_context(|| format!("copying {}", manifest_path.display()))?;

    let base = dir.join("base.gguf");
    let shipped = models.join(skill).join(&manifest.base.file);
    if !shipped.exists() && matches!(manifest.architecture, Architecture::Gemma3(_)) {
        // Written where the manifest names the base (the planner shares the language skill's),
        // so it is made once, then copied as a shipped base is.
        make_gemma_base(models, skill, &shipped, &manifest.base.recipe)?;
    }
    if shipped.exists() {
        std::fs::copy(&shipped, &base).with_context(|| format!("copying {}", shipped.display()))?;
    } else if manifest.task.kind == "reverse" {
        aginet::nn::model::tiny::write_tiny_model(
            &base,
            0,
            aginet::nn::model::tiny::TinyQuant::Q8_0,
        )?;
    } else if matches!(manifest.architecture, Architecture::Bert(_))
        && models
            .join(MINILM_SOURCE)
            .join("model.safetensors")
            .exists()
    {
        // The recipe's conversion, from the files models/minilm/fetch.sh took from PyPI.
        crate::convert_bert::convert(&models.join(MINILM_SOURCE), &base, GgmlDType::Q8_0)?;
    } else {
        bail!(
            "{}: missing; make it with: {}",
            shipped.display(),
            manifest.base.recipe
        );
    }
    let sha = sha256_file(&base)?;
    if sha != manifest.base.sha256 {
        bail!(
            "{}: sha256 is {sha}, the manifest {} pins {}",
            base.display(),
            manifest_path.display(),
            manifest.base.sha256
        );
    }

    let task = &manifest.task;
    let recipe = |split, seed, n, exclude: &_| {
        aginet::task::examples(&task.kind, split, seed, n, exclude, models)
            .with_context(|| format!("skill {skill}: making its data"))?
            .with_context(|| {
                format!(
                    "skill {skill}: no data recipe for task kind {:?}",
                    task.kind
                )
            })
    };
    let pool = recipe(Split::Pool, 1, task.pool, &Default::default())?;
    // Held-out prompts never occur in the pool volunteers train on.
    let seen = pool.iter().map(|p| p.prompt.clone()).collect();
    let held_out = recipe(Split::HeldOut, 2, task.held_out, &seen)?;
    let (train, held_out) = (
        aginet::task::jsonl(&pool, 0),
        aginet::task::jsonl(&held_out, task.held_out),
    );
    write_atomic(&dir.join("data").join("train.jsonl"), train.as_bytes())?;
    write_atomic(
        &dir.join("data").join("held_out.jsonl"),
        held_out.as_bytes(),
    )?;
    tracing::info!(
        "skill {skill}: base {} ({sha}), training pool sha256 {}",
        base.display(),
        &sha256_hex(train.as_bytes())[..12]
    );
    Ok(())
}
