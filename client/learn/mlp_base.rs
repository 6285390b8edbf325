//! Training a classifier base from scratch: every weight of an [`MlpClassifier`] trained in f32
//! with AdamW on labelled inputs, the way the project makes the vision skill's base (the
//! volunteers only ever train adapters on top of it).
//!
//! Deterministic for a given seed, data and thread count on one machine: the initial weights
//! and the batch order come from ChaCha8 streams of `seed`.

use crate::error::Result;
use crate::format::config::Hyper;
use crate::format::tensors::NamedTensors;
use crate::learn::optim::{clip_global_norm, AdamW};
use crate::nn::model::mlp::{MlpClassifier, MlpConfig};
pub use crate::task::digits::Example;
use candle_core::{DType, Device, Tensor, Var, D};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How the base is trained.
#[derive(Clone, Debug, PartialEq)]
pub struct BaseTraining {
    /// Passes over the training examples.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Peak learning rate (after a linear warm-up of `warmup_steps`).
    pub lr: f64,
    /// Steps of the warm-up.
    pub warmup_steps: u32,
    /// Seed of the initial weights and the batch order.
    pub seed: u64,
}

impl Default for BaseTraining {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 32,
            lr: 3e-3,
            warmup_steps: 10,
            seed: 0,
        }
    }
}

/// AdamW settings for a classifier: PyTorch's defaults (no weight decay), gradients clipped to
/// norm 1, and the given learning rate, warm-up and batch size.
pub fn adam(lr: f64, warmup_steps: u32, batch_size: usize) -> Hyper {
    Hyper {
        lr,
        warmup_steps,
        batch_size,
        weight_decay: 0.0,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        grad_clip: 1.0,
        max_seq_len: 1,
    }
}

/// Inputs (rows, n_input) and labels (rows,) of `examples`.
pub fn batch(examples: &[Example], device: &Device) -> Result<(Tensor, Tensor)> {
    let width = examples.first().map_or(0, |e| e.input.len());
    let x: Vec<f32> = examples
        .iter()
        .flat_map(|e| e.input.iter().copied())
        .collect();
    let y: Vec<u32> = examples.iter().map(|e| e.label).collect();
    Ok((
        Tensor::from_vec(x, (examples.len(), width), device)?,
        Tensor::from_vec(y, examples.len(), device)?,
    ))
}

/// Mean cross-entropy of the classifier's logits for `x` against `y`.
pub fn cross_entropy(model: &MlpClassifier, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(&model.forward(x)?, D::Minus1)?;
    Ok(logp.gather(&y.unsqueeze(1)?, 1)?.neg()?.mean_all()?)
}

/// Fraction of `examples` whose highest logit is their label.
pub fn accuracy(model: &MlpClassifier, examples: &[Example], device: &Device) -> Result<f64> {
    if examples.is_empty() {
        return Ok(0.0);
    }
    let (x, y) = batch(examples, device)?;
    let right = model
        .forward(&x)?
        .argmax(D::Minus1)?
        .eq(&y)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(f64::from(right) / examples.len() as f64)
}

/// Glorot-uniform weights and zero biases for `cfg`, from `seed`.
fn initial_weights(cfg: &MlpConfig, seed: u64) -> Result<Vec<(String, Var)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    cfg.tensors()
        .into_iter()
        .map(|(name, dims)| {
            let values: Vec<f32> = match dims.as_slice() {
                [out, inp] => {
                    let bound = (6.0 / (out + inp) as f32).sqrt();
                    (0..out * inp)
                        .map(|_| rng.random_range(-bound..bound))
                        .collect()
                }
                _ => vec![0.0; dims.iter().product()],
            };
            let t = Tensor::from_vec(values, dims, &Device::Cpu)?;
            Ok((name, Var::from_tensor(&t)?))
        })
        .collect()
}

/// Trains a base of shape `cfg` on `train`, calling `after_epoch(epoch, model)` after each
/// pass (for progress), and returns its weights by GGUF name.
pub fn train(
    cfg: &MlpConfig,
    train: &[Example],
    how: &BaseTraining,
    mut after_epoch: impl FnMut(usize, &MlpClassifier) -> Result<()>,
) -> Result<NamedTensors> {
    let vars = initial_weights(cfg, how.seed)?;
    let weights: NamedTensors = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    let model = MlpClassifier::from_dense(cfg, &weights)?;
    let mut optimizer = AdamW::new(vars.clone(), adam(how.lr, how.warmup_steps, how.batch_size))?;
    let mut order = train.to_vec();
    let mut rng = ChaCha8Rng::seed_from_u64(how.seed ^ 0x5EED);
    let mut step = 0u32;
    for epoch in 0..how.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(how.batch_size.max(1)) {
            let (x, y) = batch(chunk, &Device::Cpu)?;
            let loss = cross_entropy(&model, &x, &y)?;
            let mut grads = optimizer.gradients(&loss.backward()?)?;
            clip_global_norm(&mut grads, 1.0)?;
            step += 1;
            let warm = (f64::from(step) / f64::from(how.warmup_steps.max(1))).min(1.0);
            optimizer.step(&grads, how.lr * warm)?;
        }
        after_epoch(epoch, &model)?;
    }
    Ok(vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two noisy clusters per class in 64 dimensions: learnable, not trivially.
    fn clusters(n: usize, seed: u64) -> Vec<Example> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let label = (i % 4) as u32;
                let input = (0..64)
                    .map(|j| {
                        let centre = if j % 4 == label as usize { 1.0 } else { 0.0 };
                        centre + rng.random_range(-0.4f32..0.4)
                    })
                    .collect();
                Example { input, label }
            })
            .collect()
    }

    #[test]
    fn a_base_learns_and_the_same_seed_gives_the_same_weights() {
        let cfg = MlpConfig {
            n_input: 64,
            n_hidden: 32,
            n_layer: 1,
            n_class: 4,
        };
        let how = BaseTraining {
            epochs: 3,
            ..Default::default()
        };
        let (train_set, test_set) = (clusters(256, 1), clusters(64, 2));
        let mut first_epoch = None;
        let w = train(&cfg, &train_set, &how, |epoch, m| {
            if epoch == 0 {
                first_epoch = Some(accuracy(m, &test_set, &Device::Cpu)?);
            }
            Ok(())
        })
        .unwrap();
        let trained = MlpClassifier::from_dense(&cfg, &w).unwrap();
        let acc = accuracy(&trained, &test_set, &Device::Cpu).unwrap();
        assert!(
            acc > 0.95,
            "accuracy {acc} (after one epoch {first_epoch:?})"
        );
        let again = train(&cfg, &train_set, &how, |_, _| Ok(())).unwrap();
        for (name, t) in &w {
            let d = crate::test_util::max_abs_diff(t, &again[name]);
            assert_eq!(d, 0.0, "{name} differs between two runs of one seed");
        }
        let other = train(
            &cfg,
            &train_set,
            &BaseTraining { seed: 1, ..how },
            |_, _| Ok(()),
        )
        .unwrap();
        assert!(crate::test_util::max_abs_diff(&w["output.weight"], &other["output.weight"]) > 0.0);
    }
}
