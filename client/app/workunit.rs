//! One work unit from input files to result files: the code both `aginet run` and the BOINC
//! mode execute.
//!
//! Load the config, the base (checking its sha256), the adapter (or derive the initial one),
//! the data; resume from a checkpoint of the same inputs if there is one; train; then write
//! `delta` and `report` atomically and remove the checkpoint.

use crate::error::{Error, Result};
use crate::format::adapter::{trainable_names, Adapter, AdapterHeader, Site};
use crate::format::checkpoint::Checkpoint;
use crate::format::config::WorkConfig;
use crate::format::delta::{Delta, DeltaHeader, DELTA_FORMAT, DELTA_VERSION};
use crate::format::files;
use crate::format::gguf::Gguf;
use crate::format::report::{Report, REPORT_FORMAT, REPORT_VERSION};
use crate::format::tensors::NamedTensors;
use crate::learn::learner::Learner;
use crate::learn::optim::AdamW;
use crate::learn::sampler::Sampler;
use crate::learn::train::{self, Host, Outcome, TrainJob, TrainState};
use crate::nn::frozen::FrozenMode;
use crate::nn::model::ModelOptions;
use crate::nn::model::WeightMode;
use candle_core::Device;
use std::path::PathBuf;
use std::time::Instant;

/// Where a work unit's files are, by logical name, once resolved.
#[derive(Clone, Debug)]
pub struct WorkFiles {
    /// `config` (input).
    pub config: PathBuf,
    /// `model`, the GGUF base (input).
    pub model: PathBuf,
    /// `adapter`, the global adapter (input; may be absent when `adapter_version` is 0).
    pub adapter: PathBuf,
    /// `data` (input).
    pub data: PathBuf,
    /// `project_key`, the project's public key (an app version file under BOINC); needed to
    /// verify `adapter`.
    pub project_key: PathBuf,
    /// `delta` (output).
    pub delta: PathBuf,
    /// `report` (output).
    pub report: PathBuf,
    /// The checkpoint (private to the run).
    pub checkpoint: PathBuf,
}

impl WorkFiles {
    /// The files of a work-unit folder, each under its logical name.
    pub fn in_dir(dir: &std::path::Path) -> Self {
        Self {
            config: dir.join("config"),
            model: dir.join("model"),
            adapter: dir.join("adapter"),
            data: dir.join("data"),
            project_key: dir.join("project_key"),
            delta: dir.join("delta"),
            report: dir.join("report"),
            checkpoint: dir.join("checkpoint"),
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug)]
pub enum RunOutcome {
    /// `delta` and `report` are written.
    Finished(Box<Report>),
    /// The host stopped the run after `step` steps; rerun to resume.
    Stopped {
        /// Steps completed.
        step: u32,
    },
}

/// Everything loaded for a run before the network is built.
struct Loaded {
    config: WorkConfig,
    adapter: Adapter,
    sites: Vec<Site>,
    gguf: Gguf,
    inputs_key: String,
}

fn load(files: &WorkFiles) -> Result<Loaded> {
    let config_bytes = files::read(&files.config)?;
    let config = WorkConfig::parse(&config_bytes).map_err(|m| Error::config(&files.config, m))?;
    let base_sha = files::sha256_file(&files.model)?;
    if base_sha != config.base_sha256 {
        return Err(Error::model(
            &files.model,
            format!(
                "sha256 is {base_sha}, the config expects {}",
                config.base_sha256
            ),
        ));
    }
    let gguf = Gguf::open(&files.model)?;
    let sites = config
        .architecture
        .sites(&config.lora.targets)
        .map_err(|m| Error::config(&files.config, format!("field lora.targets: {m}")))?;

    let expected = AdapterHeader::new(
        &config.skill,
        &config.base_sha256,
        config.adapter_version,
        &config.lora,
    );
    let (adapter, adapter_sha) = if files.adapter.exists() {
        if !files.project_key.exists() {
            return Err(Error::adapter(
                &files.adapter,
                format!(
                    "cannot verify its signature: {} is missing",
                    files.project_key.display()
                ),
            ));
        }
        let key = crate::format::signed::read_public_key(&files.project_key)?;
        (
            Adapter::read(&files.adapter, &expected, &sites, &key)?,
            files::sha256_file(&files.adapter)?,
        )
    } else if config.adapter_version == 0 {
        (
            Adapter::initial(expected, &sites, config.adapter_seed)?,
            "initial".to_string(),
        )
    } else {
        return Err(Error::adapter(
            &files.adapter,
            format!(
                "missing, and adapter_version {} needs one",
                config.adapter_version
            ),
        ));
    };

    let inputs_key = files::sha256_hex(
        format!(
            "{}\n{}\n{}\n{}\n{}",
            files::sha256_hex(&config_bytes),
            base_sha,
            adapter_sha,
            files::sha256_file(&files.data)?,
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    Ok(Loaded {
        config,
        adapter,
        sites,
        gguf,
        inputs_key,
    })
}

/// A checkpoint of these inputs, if a usable one exists; an unusable one is set aside with a
/// log line and the run starts over (which gives the same result, only later).
fn usable_checkpoint(files: &WorkFiles, key: &str, host: &mut dyn Host) -> Option<Checkpoint> {
    match Checkpoint::read(&files.checkpoint) {
        Ok(Some(c)) if c.header.inputs_key == key => Some(c),
        Ok(Some(_)) => {
            host.log(&format!(
                "{}: belongs to other inputs; starting over",
                files.checkpoint.display()
            ));
            None
        }
        Ok(None) => None,
        Err(e) => {
            let aside = files.checkpoint.with_extension("corrupt");
            let _ = std::fs::rename(&files.checkpoint, &aside);
            host.log(&format!(
                "{e:#}; moved to {}, starting over",
                aside.display()
            ));
            None
        }
    }
}

/// Runs (or resumes) the work unit on the CPU. `threads` is only recorded; the caller sets up
/// the pools.
pub fn run(files: &WorkFiles, threads: usize, host: &mut dyn Host) -> Result<RunOutcome> {
    run_on(files, threads, &Device::Cpu, host)
}

/// [`run`] with the training on `device` (a GPU, say). The files stay on the host, and the
/// claimed reward is computed on the CPU as the server computes it, whatever trained.
pub fn run_on(
    files: &WorkFiles,
    threads: usize,
    device: &Device,
    host: &mut dyn Host,
) -> Result<RunOutcome> {
    let started = Instant::now();
    let mut loaded = load(files)?;
    let config = loaded.config.clone();
    let resume = usable_checkpoint(files, &loaded.inputs_key, host);

    // The trained factors become variables, starting from the checkpoint when resuming.
    let trained = trainable_names(&loaded.sites, config.lora.train_a);
    let mut factors = NamedTensors::new();
    for (name, t) in &loaded.adapter.tensors {
        factors.insert(name.clone(), t.to_device(device)?);
    }
    if let Some(c) = &resume {
        for name in &trained {
            let start = from_checkpoint(files, &c.params, name)?.to_device(device)?;
            factors.insert(name.clone(), start);
        }
    }
    let vars = crate::format::tensors::make_trainable(&mut factors, &trained)?;
    let learner = Learner::load(
        &config.architecture,
        config.reward.as_deref(),
        &mut loaded.gguf,
        Some(&files.data),
        &ModelOptions {
            weights: WeightMode::Quantized(FrozenMode {
                backward: config.backward,
                products: config.products,
            }),
            lora: &config.lora,
            factors: &factors,
            max_seq_len: config.hyper.max_seq_len,
            device,
        },
        &files.config,
    )?;
    let mut opt = AdamW::new(vars, config.hyper.clone())?;
    let eval_reward = || {
        let max_len = config.hyper.max_seq_len;
        learner.eval_reward(config.hyper.batch_size, max_len, device)
    };

    let mut state = match resume {
        Some(c) => {
            let moments = |group: &NamedTensors| -> Result<Vec<_>> {
                let on_device =
                    |n: &String| Ok(from_checkpoint(files, group, n)?.to_device(device)?);
                trained.iter().map(on_device).collect()
            };
            let (m, v) = (moments(&c.m)?, moments(&c.v)?);
            opt.restore(m, v, c.header.step as u64);
            let sampler = Sampler::restore(&c.header.sampler, learner.n_train())
                .map_err(|m| Error::format(&files.checkpoint, m))?;
            host.log(&format!(
                "resuming from checkpoint at step {}",
                c.header.step
            ));
            TrainState {
                step: c.header.step,
                sampler,
                reward_before: c.header.reward_before,
                losses: c.header.losses,
                tokens: c.header.tokens,
                elapsed_before_s: c.header.elapsed_s,
            }
        }
        None => TrainState::new(learner.n_train(), config.seed, eval_reward()?),
    };

    let objective = learner.objective(device);
    let job = TrainJob {
        config: &config,
        objective: objective.as_ref(),
        checkpoint_path: &files.checkpoint,
        inputs_key: &loaded.inputs_key,
        started,
    };
    if let Outcome::Stopped { step } = train::train(&job, &mut state, &mut opt, host)? {
        return Ok(RunOutcome::Stopped { step });
    }

    let delta = delta_of(&config, &loaded.adapter, &opt)?;
    // The claim is the reward of exactly what the server will evaluate, computed as it does: a
    // model built afresh on the adapter plus the delta as written, with no trainable variables.
    // The trained values differ from that sum in the last bit, and the base's quantized kernels
    // round activations to 8 bits, so such a bit can move a real model's reward by more than the
    // validator's tolerance; a generated plan can change with it.
    drop(objective);
    drop(learner);
    let mut applied = NamedTensors::new();
    for (name, t) in crate::learn::score::apply_delta(&loaded.adapter, &delta.tensors)? {
        applied.insert(name, t);
    }
    let scorer = Learner::load(
        &config.architecture,
        config.reward.as_deref(),
        &mut Gguf::open(&files.model)?,
        Some(&files.data),
        &ModelOptions {
            weights: WeightMode::Quantized(FrozenMode {
                backward: config.backward,
                products: config.products,
            }),
            lora: &config.lora,
            factors: &applied,
            max_seq_len: config.hyper.max_seq_len,
            device: &Device::Cpu,
        },
        &files.config,
    )?;
    let reward_after = scorer.eval_reward(
        config.hyper.batch_size,
        config.hyper.max_seq_len,
        &Device::Cpu,
    )?;
    let delta_bytes = delta.to_bytes()?;
    files::write_atomic(&files.delta, &delta_bytes)?;
    let report = Report {
        format: REPORT_FORMAT.into(),
        version: REPORT_VERSION,
        skill: config.skill.clone(),
        delta_sha256: files::sha256_hex(&delta_bytes),
        base_sha256: config.base_sha256.clone(),
        adapter_version: config.adapter_version,
        seed: config.seed,
        reward_kind: scorer.reward_kind().into(),
        reward_before: state.reward_before,
        reward_after,
        loss_curve: state.losses,
        steps: state.step,
        tokens: state.tokens,
        wall_time_s: state.elapsed_before_s + started.elapsed().as_secs_f64(),
        app_version: crate::app::build_info::VERSION.into(),
        threads,
        platform: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
    };
    report.write(&files.report)?;
    match std::fs::remove_file(&files.checkpoint) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(&files.checkpoint, e))
        }
        _ => {}
    }
    host.progress(1.0);
    Ok(RunOutcome::Finished(Box::new(report)))
}

/// Tensor `name` of a checkpoint group, or an error naming the checkpoint.
fn from_checkpoint(
    files: &WorkFiles,
    group: &NamedTensors,
    name: &str,
) -> Result<candle_core::Tensor> {
    group
        .get(name)
        .cloned()
        .ok_or_else(|| Error::format(&files.checkpoint, format!("tensor {name} is missing")))
}

/// The delta from the adapter the run started with to the optimizer's current factors.
fn delta_of(config: &WorkConfig, start: &Adapter, opt: &AdamW) -> Result<Delta> {
    let mut tensors = NamedTensors::new();
    for (name, var) in opt.params() {
        let after = var.as_tensor().detach().to_device(&Device::Cpu)?;
        tensors.insert(name.clone(), (after - &start.tensors[name])?);
    }
    Ok(Delta {
        header: DeltaHeader {
            format: DELTA_FORMAT.into(),
            version: DELTA_VERSION,
            skill: config.skill.clone(),
            base_sha256: config.base_sha256.clone(),
            adapter_version: config.adapter_version,
            lora: config.lora.clone(),
            steps: config.steps,
        },
        tensors,
    })
}
