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

mod llama_cpp;
mod metrics;
mod page;
mod peft;
mod plots;
mod reference;

use crate::project::Project;
use aginet::format::files::write_atomic;
use anyhow::{Context, Result};
use ed25519_dalek::Signer;
use std::path::{Path, PathBuf};

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

/// The PEFT export of `skill`'s global `version`, its base's `tokenizer.json`, the llama.cpp
/// `adapter.gguf` (decoders and the encoder), and what agiNet computes on the first held-out example as its
/// reference.
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

    // The base's tokenizer as a Hugging Face tokenizer.json, for transformers and PEFT users
    // (the classifier reads no text; the tiny model's byte vocabulary has no such form), and the
    // adapter for llama.cpp.
    if manifest.architecture.family() != aginet::format::config::Family::Classifier {
        let gguf = aginet::format::gguf::Gguf::open(&project.base(skill))?;
        if let Some(json) = aginet::text::from_gguf(&gguf)?.to_json() {
            write_atomic(&dir.join("tokenizer.json"), json.as_bytes())?;
        }
        if llama_cpp::architecture_name(&manifest.architecture).is_some() {
            llama_cpp::export(
                &adapter,
                &sites,
                &manifest.architecture,
                &manifest.lora,
                &gguf,
                dir,
            )?;
        }
    }

    let reference = reference::of(project, &manifest, version, &adapter.tensors)?;
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
        let sha = aginet::format::files::sha256_file(&dir.join(rel))?;
        sums.push_str(&format!("{sha}  {rel}\n"));
    }
    write_atomic(&dir.join("SHA256SUMS"), sums.as_bytes())?;
    let key = aginet::format::signed::read_signing_key(&project.signing_key())?;
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
