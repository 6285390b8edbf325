//! `aginet-server`: the project operator's tools. This build holds the tools that make test
//! material (the tiny base model and its synthetic task data) and work-unit configs.

use aginet::manifest::Manifest;
use aginet::model::tiny::{write_tiny_model, TinyQuant};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// agiNet project tools.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the tiny llama-style test base (random init from the seed) as GGUF.
    TinyModel {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the random weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Quantization of the matrices.
        #[arg(long, value_enum, default_value = "q8_0")]
        quant: TinyQuant,
    },
    /// Write the tiny skill's synthetic task (reverse a word) as JSONL.
    TinyData {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the examples.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Number of examples.
        #[arg(long, default_value_t = 256)]
        count: usize,
        /// How many of them (the last) are the eval split.
        #[arg(long, default_value_t = 32)]
        eval: usize,
    },
    /// Write a work unit's `config` from a skill manifest's defaults.
    WorkConfig {
        /// Folder holding the skill manifests.
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Skill name (its folder under --models).
        #[arg(long)]
        skill: String,
        /// Seed of the work unit's data order.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Global adapter version the work starts from.
        #[arg(long, default_value_t = 0)]
        adapter_version: u64,
        /// Optimizer steps (default: the manifest's).
        #[arg(long)]
        steps: Option<u32>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::TinyModel { out, seed, quant } => {
            let sha = write_tiny_model(&out, seed, quant)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{sha}  {}", out.display());
        }
        Command::TinyData {
            out,
            seed,
            count,
            eval,
        } => {
            anyhow::ensure!(
                eval < count,
                "--eval {eval} must be smaller than --count {count}"
            );
            let jsonl = aginet::task::reverse_jsonl(seed, count, eval);
            aginet::files::write_atomic(&out, jsonl.as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
        }
        Command::WorkConfig {
            models,
            skill,
            seed,
            adapter_version,
            steps,
            out,
        } => {
            let manifest = Manifest::load(&models, &skill)?;
            let mut config = manifest.work_config(seed, adapter_version);
            if let Some(steps) = steps {
                config.steps = steps;
            }
            aginet::files::write_atomic(&out, config.to_json().as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
        }
    }
    Ok(())
}
