//! The training loop: AdamW on the adapter's trainable factors, one fixed-format log line per
//! step, checkpoints when the host allows, and a stop whenever the host asks.
//!
//! It reads top to bottom: draw a batch, forward, loss, backward (in parts, side by side:
//! [`crate::learn::micro_batch`]), clip, step, log, checkpoint.
//! Everything that varies between runs (data order, optimizer state) lives in [`TrainState`]
//! and the optimizer, and both go into the checkpoint, so a resumed run continues bit for bit.

use crate::error::{Error, Result};
use crate::format::checkpoint::{
    Checkpoint, CheckpointHeader, CHECKPOINT_FORMAT, CHECKPOINT_VERSION,
};
use crate::format::config::WorkConfig;
use crate::format::tensors::NamedTensors;
use crate::learn::eval;
use crate::learn::micro_batch::{batch_gradients, BatchGradients};
pub use crate::learn::objective::Objective;
use crate::learn::optim::{clip_global_norm, AdamW};
use crate::learn::sampler::Sampler;
use crate::nn::model::Decoder;
use crate::text::data::{Batch, Dataset, Sequence};
use candle_core::{Device, Tensor};
use std::path::Path;
use std::time::Instant;

/// What the host wants the loop to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop now (after the last checkpoint): quit, suspend, abort.
    Stop,
}

/// The environment the loop runs in: standalone, under the BOINC client, or a test.
pub trait Host {
    /// Asked before each step.
    fn poll(&mut self) -> Control;
    /// Asked after each step: may a checkpoint be written now?
    fn time_to_checkpoint(&mut self, step: u32) -> bool;
    /// Told after a checkpoint has been written.
    fn checkpoint_done(&mut self) {}
    /// Told the fraction of the work done, in [0, 1].
    fn progress(&mut self, _fraction: f64) {}
    /// Given each log line.
    fn log(&mut self, line: &str) {
        eprintln!("{line}");
    }
}

/// A host for runs inside another program (the server's tools, tests, benchmarks): never
/// stops early, never checkpoints, keeps its log lines to itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unattended;

impl Host for Unattended {
    fn poll(&mut self) -> Control {
        Control::Continue
    }
    fn time_to_checkpoint(&mut self, _step: u32) -> bool {
        false
    }
    fn log(&mut self, _line: &str) {}
}

/// How a call to [`train`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All steps are done.
    Finished,
    /// The host asked to stop after `step` completed steps.
    Stopped {
        /// Steps completed (and checkpointed, if the host allowed a checkpoint then).
        step: u32,
    },
}

/// The run's progress apart from the optimizer.
#[derive(Clone, Debug)]
pub struct TrainState {
    /// Steps completed.
    pub step: u32,
    /// Data order.
    pub sampler: Sampler,
    /// Reward on the eval split before training.
    pub reward_before: f64,
    /// Training loss of every completed step.
    pub losses: Vec<f32>,
    /// Completion tokens trained on.
    pub tokens: u64,
    /// Wall time of earlier runs, seconds.
    pub elapsed_before_s: f64,
}

impl TrainState {
    /// The state of a run that has not started: `n_train` examples to visit in an order drawn
    /// from `seed`, and the reward measured before training.
    pub fn new(n_train: usize, seed: u64, reward_before: f64) -> Self {
        Self {
            step: 0,
            sampler: Sampler::new(n_train, seed),
            reward_before,
            losses: Vec::new(),
            tokens: 0,
            elapsed_before_s: 0.0,
        }
    }
}

/// A decoder's objective: the mean NLL of the completion tokens of a batch of sequences.
pub struct DecoderObjective<'a> {
    /// The model, built over the optimizer's variables.
    pub model: &'a dyn Decoder,
    /// The examples.
    pub data: &'a Dataset,
    /// Padding id of the tokenizer.
    pub pad: u32,
    /// Where tensors live.
    pub device: &'a Device,
}

impl Objective for DecoderObjective<'_> {
    fn loss(&self, picked: &[usize]) -> Result<(Tensor, usize)> {
        let seqs: Vec<&Sequence> = picked.iter().map(|&i| &self.data.train[i]).collect();
        let batch = Batch::new(&seqs, self.pad, self.device)?;
        Ok((eval::batch_loss(self.model, &batch)?, batch.n_tokens))
    }

    /// Each sequence's NLL is its own: a batch's mean is its parts' count-weighted mean.
    fn separable(&self) -> bool {
        true
    }
}

/// What the loop trains with.
pub struct TrainJob<'a> {
    /// The work unit's config.
    pub config: &'a WorkConfig,
    /// The loss, over a model built on the optimizer's variables.
    pub objective: &'a dyn Objective,
    /// Where checkpoints go.
    pub checkpoint_path: &'a Path,
    /// Key of the inputs, stored in each checkpoint.
    pub inputs_key: &'a str,
    /// When this run started.
    pub started: Instant,
}

/// Learning rate at `step` (0-based): linear warm-up, then constant.
pub fn learning_rate(config: &WorkConfig, step: u32) -> f64 {
    let h = &config.hyper;
    if step < h.warmup_steps {
        h.lr * (step + 1) as f64 / (h.warmup_steps + 1) as f64
    } else {
        h.lr
    }
}

/// Runs steps until the budget is spent or the host says stop.
pub fn train(
    job: &TrainJob<'_>,
    state: &mut TrainState,
    opt: &mut AdamW,
    host: &mut dyn Host,
) -> Result<Outcome> {
    let total = job.config.steps;
    while state.step < total {
        if host.poll() == Control::Stop {
            return Ok(Outcome::Stopped { step: state.step });
        }
        let t0 = Instant::now();
        let lr = learning_rate(job.config, state.step);

        let picked = state.sampler.next_batch(job.config.hyper.batch_size);
        let BatchGradients {
            loss: loss_value,
            counted,
            mut grads,
        } = batch_gradients(job.objective, &picked, opt)?;
        if !loss_value.is_finite() {
            return Err(Error::Diverged {
                step: state.step + 1,
                msg: format!("loss is {loss_value}"),
            });
        }
        let grad_norm = clip_global_norm(&mut grads, job.config.hyper.grad_clip)?;
        if !grad_norm.is_finite() {
            return Err(Error::Diverged {
                step: state.step + 1,
                msg: format!("gradient norm is {grad_norm}"),
            });
        }
        opt.step(&grads, lr)?;

        state.step += 1;
        state.losses.push(loss_value);
        state.tokens += counted as u64;
        host.log(&format!(
            "step {:>5}/{total} loss {loss_value:.6} lr {lr:.3e} grad_norm {grad_norm:.4} tokens {} ms {:.1}",
            state.step,
            counted,
            t0.elapsed().as_secs_f64() * 1e3
        ));
        host.progress(state.step as f64 / total as f64);
        if host.time_to_checkpoint(state.step) {
            checkpoint(job, state, opt)?.write(job.checkpoint_path)?;
            host.checkpoint_done();
        }
    }
    Ok(Outcome::Finished)
}

/// The checkpoint of the current state.
pub fn checkpoint(job: &TrainJob<'_>, state: &TrainState, opt: &AdamW) -> Result<Checkpoint> {
    let (m, v, _) = opt.state();
    let mut params = NamedTensors::new();
    let mut ms = NamedTensors::new();
    let mut vs = NamedTensors::new();
    for (i, (name, var)) in opt.params().iter().enumerate() {
        params.insert(name.clone(), var.as_tensor().detach());
        ms.insert(name.clone(), m[i].clone());
        vs.insert(name.clone(), v[i].clone());
    }
    let header = CheckpointHeader {
        format: CHECKPOINT_FORMAT.into(),
        version: CHECKPOINT_VERSION,
        inputs_key: job.inputs_key.to_string(),
        step: state.step,
        sampler: state.sampler.state(),
        reward_before: state.reward_before,
        losses: state.losses.clone(),
        tokens: state.tokens,
        elapsed_s: state.elapsed_before_s + job.started.elapsed().as_secs_f64(),
    };
    Ok(Checkpoint {
        header,
        params,
        m: ms,
        v: vs,
    })
}
