//! `snapshot --project DIR --out PUBLIC_DIR`: publishes what others track.
//!
//! ```text
//! PUBLIC_DIR/
//!   index.html                      the dashboard (static, no script)
//!   metrics.json                    every number on it
//!   plots/*.svg                     reward per skill per version, results, hosts, credit per night
//!   adapters/<skill>/v<N>/          the skill's current global adapter in PEFT's format, with
//!                                   agiNet's reference logits (see peft.rs)
//!   project_key.pub                 the project's ed25519 public key (hex)
//!   SHA256SUMS, SHA256SUMS.sig      every file's sha256, signed by the project key (hex)
//! ```
//!
//! The folder is built beside PUBLIC_DIR and swapped in whole, so a web server never serves a
//! half-written snapshot.

mod metrics;
mod page;
mod peft;
mod plots;

use crate::project::Project;
use aginet::files::write_atomic;
use anyhow::{Context, Result};
use ed25519_dalek::Signer;
use std::path::{Path, PathBuf};

/// Most logits a reference keeps: every position for a small vocabulary, the last few otherwise.
const REFERENCE_VALUES: usize = 1 << 20;

/// Writes the snapshot of `project` to `out`; returns the page's path.
pub fn snapshot(project: &Project, out: &Path) -> Result<PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = out
        .file_name()
        .with_context(|| format!("{}: not a folder name", out.display()))?
        .to_string_lossy();
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
    let staging = parent.join(format!(".{name}.staging"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("{}", staging.display()))?;
    }
    std::fs::create_dir_all(staging.join("plots"))
        .with_context(|| format!("{}", staging.display()))?;

    let metrics = metrics::compute(project, now)?;
    write_atomic(
        &staging.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)?.as_bytes(),
    )?;
    plots::write_all(&metrics, &staging.join("plots"))?;
    let mut exports = Vec::new();
    for skill in &project.settings.skills {
        let version = project.adapter_version(skill)?;
        let rel = format!("adapters/{skill}/v{version}");
        export_skill(project, skill, version, &staging.join(&rel))?;
        exports.push(page::ExportLink {
            skill: skill.clone(),
            version,
            dir: rel,
        });
    }
    let generated = chrono::DateTime::from_timestamp(now as i64, 0)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    write_atomic(
        &staging.join("index.html"),
        page::render(&metrics, &exports, &generated).as_bytes(),
    )?;
    std::fs::copy(project.public_key(), staging.join("project_key.pub"))
        .with_context(|| format!("{}", project.public_key().display()))?;
    sign_checksums(project, &staging)?;

    let old = parent.join(format!(".{name}.old"));
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("{}", old.display()))?;
    }
    if out.exists() {
        std::fs::rename(out, &old).with_context(|| format!("{}", out.display()))?;
    }
    std::fs::rename(&staging, out).with_context(|| format!("{}", out.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("{}", old.display()))?;
    }
    Ok(out.join("index.html"))
}

/// The PEFT export of `skill`'s global `version`, with agiNet's logits on the first held-out
/// example as its reference.
fn export_skill(project: &Project, skill: &str, version: u64, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let manifest = project.manifest(skill)?;
    let adapter = project.global_adapter(&manifest, version)?;
    let sites = Project::sites(&manifest)?;
    let base_name = format!("{skill} base, GGUF sha256 {}", manifest.base.sha256);
    peft::export(
        &adapter,
        &sites,
        &manifest.architecture,
        &manifest.lora,
        &base_name,
        dir,
    )?;

    let base = project.base(skill);
    let held_out = project.held_out(skill);
    let text =
        std::fs::read_to_string(&held_out).with_context(|| format!("{}", held_out.display()))?;
    let first: aginet::data::Example = serde_json::from_str(text.lines().next().unwrap_or("{}"))
        .with_context(|| format!("{}: line 1", held_out.display()))?;
    let max = manifest.defaults.hyper.max_seq_len;
    let skill_view = aginet::score::Skill {
        architecture: &manifest.architecture,
        lora: &manifest.lora,
        max_seq_len: max,
        batch_size: 1,
    };
    if !manifest.architecture.is_decoder() {
        let digit = aginet::task::digits::from_pair(&first.prompt, &first.completion)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: line 1", held_out.display()))?;
        let input = aginet::task::digits::example(&digit).input;
        let logits = aginet::score::class_logits(&base, &skill_view, &adapter.tensors, &input)?;
        let reference = serde_json::json!({
            "skill": skill,
            "adapter_version": version,
            "base_sha256": manifest.base.sha256,
            "input": input,
            "label": digit.label,
            "logits": logits,
        });
        write_atomic(
            &dir.join("reference.json"),
            serde_json::to_string(&reference)?.as_bytes(),
        )?;
        return Ok(());
    }
    let tokenizer = aginet::tokenizer::from_gguf(&aginet::gguf::Gguf::open(&base)?)?;
    let mut tokens = vec![tokenizer.bos()];
    tokens.extend(tokenizer.encode(&format!("{}{}", first.prompt, first.completion)));
    tokens.truncate(max);
    let logits = aginet::score::logits(&base, &skill_view, &adapter.tensors, &tokens)?;
    let vocab = logits.first().map_or(1, Vec::len).max(1);
    let keep = (REFERENCE_VALUES / vocab).clamp(1, logits.len().max(1));
    let start = logits.len().saturating_sub(keep);
    let reference = serde_json::json!({
        "skill": skill,
        "adapter_version": version,
        "base_sha256": manifest.base.sha256,
        "tokens": tokens,
        "positions": (start..logits.len()).collect::<Vec<_>>(),
        "logits": &logits[start..],
    });
    write_atomic(
        &dir.join("reference.json"),
        serde_json::to_string(&reference)?.as_bytes(),
    )?;
    Ok(())
}

/// Writes `SHA256SUMS` (every file under `dir`, sorted) and its signature `SHA256SUMS.sig`.
fn sign_checksums(project: &Project, dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    list_files(dir, dir, &mut files)?;
    files.sort();
    let mut sums = String::new();
    for rel in &files {
        let sha = aginet::files::sha256_file(&dir.join(rel))?;
        sums.push_str(&format!("{sha}  {rel}\n"));
    }
    write_atomic(&dir.join("SHA256SUMS"), sums.as_bytes())?;
    let key = aginet::signed::read_signing_key(&project.signing_key())?;
    let signature = hex::encode(key.sign(sums.as_bytes()).to_bytes());
    write_atomic(
        &dir.join("SHA256SUMS.sig"),
        format!("{signature}\n").as_bytes(),
    )?;
    Ok(())
}

/// Every file under `dir`, as paths relative to `root` with `/` separators.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            list_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            out.push(
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
    Ok(())
}
