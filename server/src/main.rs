//! `aginet-server`: the project operator's tools, one subcommand per step of a round, plus the
//! tools that make test material (the tiny base model and its synthetic task data).

mod init;
mod make_work;
mod project;
mod route;
mod scoreboard;

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
    /// Create a project folder: state folders, the signing key, the skills from models/.
    Init {
        /// The project folder to create.
        #[arg(long)]
        project: PathBuf,
        /// Folder holding the skill manifests.
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Skills to train (repeatable; default: every skill under --models).
        #[arg(long)]
        skill: Vec<String>,
    },
    /// Print the skill that gets the next work, and why.
    Route {
        /// The project folder.
        #[arg(long)]
        project: PathBuf,
    },
    /// Make work units: with --out, one folder per work unit holding its input files.
    MakeWork {
        /// The project folder.
        #[arg(long)]
        project: PathBuf,
        /// Skill (default: what `route` picks).
        #[arg(long)]
        skill: Option<String>,
        /// How many work units.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Folder to write the work-unit folders into.
        #[arg(long)]
        out: PathBuf,
    },
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
        Command::Init {
            project,
            models,
            skill,
        } => {
            let p = init::init(&project, &models, &skill)?;
            println!(
                "initialised {} with skills {:?}",
                p.root().display(),
                p.settings.skills
            );
        }
        Command::Route { project } => {
            let p = project::Project::open(&project)?;
            let d = pick_skill(&p)?;
            println!("{}\t{}", d.skill, d.reason);
        }
        Command::MakeWork {
            project,
            skill,
            count,
            out,
        } => {
            let p = project::Project::open(&project)?;
            let skill = match skill {
                Some(s) => s,
                None => {
                    let d = pick_skill(&p)?;
                    eprintln!("route: {} ({})", d.skill, d.reason);
                    d.skill
                }
            };
            for dir in make_work::make_work(&p, &skill, count, &out)? {
                println!("{}", dir.display());
            }
        }
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

/// The router's decision from the project's scoreboard.
fn pick_skill(p: &project::Project) -> Result<route::Decision> {
    let rows = scoreboard::read(&p.scoreboard())?;
    Ok(route::route(&p.settings.skills, &rows, &p.settings.route))
}
