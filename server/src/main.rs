//! `aginet-server`: the project operator's tools. This build holds the tools that make test
//! material: the tiny base model and its synthetic task data.

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
    }
    Ok(())
}
