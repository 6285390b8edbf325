//! The server's view of a result: the held-out reward of an adapter, optionally with a delta
//! applied. The validator uses it to recompute what a volunteer claims; the aggregator to
//! report the new global adapter's reward.

use crate::error::{Error, Result};
use crate::format::adapter::{Adapter, LoraSpec};
use crate::format::config::Architecture;
use crate::format::gguf::Gguf;
use crate::format::manifest::Manifest;
use crate::format::tensors::NamedTensors;
use crate::learn::learner::Learner;
use crate::learn::retrieve;
use crate::nn::frozen::{FrozenMode, Products};
use crate::nn::model::WeightMode;
use crate::nn::model::{self, ModelOptions};
use candle_core::Device;
use std::path::Path;

/// What the scorer needs to know of a skill.
pub struct Skill<'a> {
    /// The base's architecture and dimensions.
    pub architecture: &'a Architecture,
    /// The adapter's shape.
    pub lora: &'a LoraSpec,
    /// Longest example.
    pub max_seq_len: usize,
    /// Evaluation batch size.
    pub batch_size: usize,
    /// The reward kind (the manifest's `reward.kind`).
    pub reward: &'a str,
    /// How the products with the frozen base are computed: as the skill's work units do, so
    /// the recomputed reward is the volunteers' arithmetic.
    pub products: Products,
}

impl<'a> Skill<'a> {
    /// What a skill manifest says of its skill: its architecture, adapter, longest example,
    /// batch size and reward kind.
    pub fn of(manifest: &'a Manifest) -> Self {
        Self {
            architecture: &manifest.architecture,
            lora: &manifest.lora,
            max_seq_len: manifest.defaults.hyper.max_seq_len,
            batch_size: manifest.defaults.hyper.batch_size,
            reward: &manifest.reward.kind,
            products: manifest.defaults.products,
        }
    }
}

/// `adapter + delta` (factor by factor; factors the delta lacks stay as they are).
pub fn apply_delta(adapter: &Adapter, delta: &NamedTensors) -> Result<NamedTensors> {
    let mut out = adapter.tensors.clone();
    for (name, d) in delta {
        let base = out.get(name).ok_or_else(|| {
            Error::Tensor(candle_core::Error::Msg(format!(
                "delta names unknown factor {name}"
            )))
        })?;
        let sum = (base + d)?;
        out.insert(name.clone(), sum);
    }
    Ok(out)
}

/// The reward of the base with `factors` on every example of `data`: `token_likelihood` for a
/// decoder (or `plan_success` when `skill.reward` says so), `accuracy` for a classifier,
/// `recall_at_5` for an encoder.
pub fn reward(base: &Path, skill: &Skill<'_>, factors: &NamedTensors, data: &Path) -> Result<f64> {
    Ok(rewards(base, skill, factors, &[data])?[0])
}

/// [`reward`] on each of several data files, loading the model once.
pub fn rewards(
    base: &Path,
    skill: &Skill<'_>,
    factors: &NamedTensors,
    datasets: &[&Path],
) -> Result<Vec<f64>> {
    Scorer::load(base, skill, factors)?.rewards(factors, datasets)
}

/// A skill's base loaded once to score many adapters of the same shape, one after another:
/// what a resident validator keeps between results. Each [`Scorer::rewards`] writes the
/// adapter's values into the factors the model was built with, so every score runs the same
/// code on the same values as a fresh load would, bit for bit.
pub struct Scorer {
    learner: Learner,
    /// The model's own factor tensors (storage no one else holds), overwritten per score.
    slots: NamedTensors,
    batch_size: usize,
    max_seq_len: usize,
    device: Device,
}

impl Scorer {
    /// Loads `base` for `skill`, with factor tensors shaped as `shapes`' (their values are
    /// only a start: every score sets its own).
    pub fn load(base: &Path, skill: &Skill<'_>, shapes: &NamedTensors) -> Result<Self> {
        let device = Device::Cpu;
        let mut slots = NamedTensors::new();
        for (name, t) in shapes {
            // A copy in storage of its own, so that writing into it touches nothing else.
            let own = t.to_dtype(candle_core::DType::F32)?.contiguous()?.copy()?;
            slots.insert(name.clone(), own);
        }
        let mut gguf = Gguf::open(base)?;
        let opts = ModelOptions {
            weights: WeightMode::Quantized(FrozenMode {
                products: skill.products,
                ..FrozenMode::default()
            }),
            lora: skill.lora,
            factors: &slots,
            max_seq_len: skill.max_seq_len,
            device: &device,
        };
        let learner = Learner::load(
            skill.architecture,
            Some(skill.reward),
            &mut gguf,
            None,
            &opts,
            base,
        )?;
        Ok(Self {
            learner,
            slots,
            batch_size: skill.batch_size,
            max_seq_len: skill.max_seq_len,
            device,
        })
    }

    /// The reward of the base with adapter `factors` (the same names and shapes as the
    /// scorer's) on each data file of `datasets`.
    pub fn rewards(&mut self, factors: &NamedTensors, datasets: &[&Path]) -> Result<Vec<f64>> {
        self.set_factors(factors)?;
        datasets
            .iter()
            .map(|data| {
                self.learner
                    .reward_of(data, self.batch_size, self.max_seq_len, &self.device)
            })
            .collect()
    }

    /// Writes `factors` into the model's factor tensors; an error names a factor that is
    /// missing, unknown or of another shape.
    fn set_factors(&mut self, factors: &NamedTensors) -> Result<()> {
        let mismatch = |m: String| Error::Tensor(candle_core::Error::Msg(m));
        if let Some(name) = factors.keys().find(|n| !self.slots.contains_key(*n)) {
            return Err(mismatch(format!("adapter factor {name} is unknown")));
        }
        for (name, slot) in &self.slots {
            let t = factors
                .get(name)
                .ok_or_else(|| mismatch(format!("adapter factor {name} is missing")))?;
            if t.dims() != slot.dims() {
                return Err(mismatch(format!(
                    "adapter factor {name} is {:?}, not {:?}",
                    t.dims(),
                    slot.dims()
                )));
            }
            let values = t.to_dtype(candle_core::DType::F32)?.contiguous()?;
            slot.slice_set(&values, 0, 0)?;
        }
        Ok(())
    }
}

/// The logits (one row of the vocabulary per position) of the base with `factors` on the
/// token ids `tokens`: what an exported adapter must reproduce in another framework.
pub fn logits(
    base: &Path,
    skill: &Skill<'_>,
    factors: &NamedTensors,
    tokens: &[u32],
) -> Result<Vec<Vec<f32>>> {
    let device = Device::Cpu;
    let mut gguf = Gguf::open(base)?;
    let opts = ModelOptions {
        // f32 products whatever the skill trains with: other frameworks multiply exactly.
        weights: WeightMode::Quantized(FrozenMode::default()),
        lora: skill.lora,
        factors,
        max_seq_len: skill.max_seq_len.max(tokens.len()),
        device: &device,
    };
    let model = model::load(skill.architecture, &mut gguf, &opts)?;
    let ids = candle_core::Tensor::new(tokens, &device)?.unsqueeze(0)?;
    Ok(model.forward(&ids)?.squeeze(0)?.to_vec2::<f32>()?)
}

/// The class logits of the classifier base with `factors` on one image's `input` (its pixels,
/// scaled as [`crate::task::digits::example`] scales them): what an exported adapter must
/// reproduce in another framework.
pub fn class_logits(
    base: &Path,
    skill: &Skill<'_>,
    factors: &NamedTensors,
    input: &[f32],
) -> Result<Vec<f32>> {
    let Architecture::Mlp(expected) = skill.architecture else {
        return Err(Error::model(base, "not an image classifier"));
    };
    let device = Device::Cpu;
    let model = crate::learn::learner::classifier(
        &mut Gguf::open(base)?,
        expected,
        &exact(skill, factors),
    )?;
    let x = candle_core::Tensor::new(input, &device)?.unsqueeze(0)?;
    Ok(model.forward(&x)?.squeeze(0)?.to_vec1::<f32>()?)
}

/// The sentence embedding of the encoder base with `factors` on token ids `tokens` (with `[CLS]`
/// and `[SEP]`): what an exported adapter must reproduce in another framework.
pub fn embedding(
    base: &Path,
    skill: &Skill<'_>,
    factors: &NamedTensors,
    tokens: &[u32],
) -> Result<Vec<f32>> {
    let Architecture::Bert(expected) = skill.architecture else {
        return Err(Error::model(base, "not a sentence encoder"));
    };
    let device = Device::Cpu;
    let model =
        crate::learn::learner::encoder(&mut Gguf::open(base)?, expected, &exact(skill, factors))?;
    let (ids, mask) = retrieve::batch(&[tokens], 0, &device)?;
    Ok(model.embed(&ids, &mask)?.squeeze(0)?.to_vec1::<f32>()?)
}

/// Options for a reference computation on the CPU: dequantized weights and exact f32 products
/// (a single row would otherwise go through the quantized kernel, which rounds the activations
/// to 8 bits, and no other framework does).
fn exact<'a>(skill: &Skill<'a>, factors: &'a NamedTensors) -> ModelOptions<'a> {
    ModelOptions {
        weights: WeightMode::DenseF32,
        lora: skill.lora,
        factors,
        max_seq_len: skill.max_seq_len,
        device: &Device::Cpu,
    }
}
