//! What differs between the kinds of network a work unit trains: how its data is read, what a
//! step minimises, and how the reward is measured. Decoders (the language skills) learn
//! completions and report `token_likelihood` (or, for the planner, `plan_success`: plans
//! generated and simulated); classifiers (vision) learn labels and report
//! `accuracy`; encoders (memory) learn to retrieve a query's passage and report `recall_at_5`.
//! The config's architecture picks one.

use crate::classify::{self, ClassifierObjective};
use crate::config::Architecture;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval;
use crate::gguf::Gguf;
use crate::image_data::ImageDataset;
use crate::model::bert::{BertDims, BertEncoder, BertOptions};
use crate::model::mlp::{MlpClassifier, MlpOptions};
use crate::model::{self, Decoder, ModelOptions};
use crate::plan;
use crate::retrieve::{self, EncoderObjective, PairDataset};
use crate::tokenizer::{self, Tokenizer};
use crate::train::{DecoderObjective, Objective};
use candle_core::Device;
use std::path::Path;

/// A work unit's network together with its examples.
pub enum Learner {
    /// A decoder and its tokenized prompt/completion examples.
    Decoder {
        /// The model.
        model: Box<dyn Decoder>,
        /// The examples.
        data: Dataset,
        /// The tokenizer's padding id.
        pad: u32,
        /// The tokenizer when the reward is `plan_success` (plans are generated and read back).
        plans: Option<Box<dyn Tokenizer>>,
    },
    /// A classifier and its images.
    Classifier {
        /// The model.
        model: MlpClassifier,
        /// The examples.
        data: ImageDataset,
    },
    /// A sentence encoder and its (query, passage) pairs.
    Encoder {
        /// The model.
        model: BertEncoder,
        /// The pairs.
        data: PairDataset,
        /// The tokenizer's padding id.
        pad: u32,
    },
}

impl Learner {
    /// Reads `data` as the architecture's kind of examples (a decoder's through the base's own
    /// tokenizer), then builds the network from base `g` with `opts`, to report `reward` (the
    /// architecture's first kind when `None`; an unknown one is a config error naming `config`).
    pub fn load(
        architecture: &Architecture,
        reward: Option<&str>,
        g: &mut Gguf,
        data: &Path,
        opts: &ModelOptions<'_>,
        config: &Path,
    ) -> Result<Self> {
        let family = architecture.family();
        let reward = reward.unwrap_or(family.reward_kinds()[0]);
        if !family.reward_kinds().contains(&reward) {
            return Err(Error::config(
                config,
                format!(
                    "field reward: a {} does not compute {reward:?}",
                    family.name()
                ),
            ));
        }
        Ok(match architecture {
            Architecture::Mlp(expected) => {
                let data = ImageDataset::read(data)?;
                let model = classifier(g, expected, opts)?;
                Self::Classifier { model, data }
            }
            Architecture::Bert(expected) => {
                let tok = tokenizer::from_gguf(g)?;
                let data = PairDataset::read(data, tok.as_ref(), opts.max_seq_len)?;
                let model = encoder(g, expected, opts)?;
                Self::Encoder {
                    model,
                    data,
                    pad: tok.pad(),
                }
            }
            _ => {
                let tok = tokenizer::from_gguf(g)?;
                let data = Dataset::read(data, tok.as_ref(), opts.max_seq_len)?;
                let model = model::load(architecture, g, opts)?;
                let pad = tok.pad();
                Self::Decoder {
                    model,
                    data,
                    pad,
                    plans: (reward == plan::REWARD_KIND).then_some(tok),
                }
            }
        })
    }

    /// Training examples.
    pub fn n_train(&self) -> usize {
        match self {
            Self::Decoder { data, .. } => data.train.len(),
            Self::Classifier { data, .. } => data.train.len(),
            Self::Encoder { data, .. } => data.train.len(),
        }
    }

    /// What a training step minimises.
    pub fn objective<'a>(&'a self, device: &'a Device) -> Box<dyn Objective + 'a> {
        match self {
            Self::Decoder {
                model, data, pad, ..
            } => Box::new(DecoderObjective {
                model: model.as_ref(),
                data,
                pad: *pad,
                device,
            }),
            Self::Classifier { model, data } => Box::new(ClassifierObjective {
                model,
                data,
                device,
            }),
            Self::Encoder { model, data, pad } => Box::new(EncoderObjective {
                model,
                data,
                pad: *pad,
                device,
            }),
        }
    }

    /// The reward on the work unit's own eval split, evaluated `batch_size` at a time (a
    /// generated plan stops at `max_len` tokens in all).
    pub fn eval_reward(&self, batch_size: usize, max_len: usize, device: &Device) -> Result<f64> {
        match self {
            Self::Decoder {
                model,
                data,
                plans: Some(tok),
                ..
            } => Ok(plan::score(
                model.as_ref(),
                tok.as_ref(),
                &data.eval,
                batch_size,
                max_len,
                device,
            )?
            .accepted),
            Self::Decoder {
                model, data, pad, ..
            } => Ok(eval::reward_from_nll(eval::mean_nll(
                model.as_ref(),
                &data.eval,
                batch_size,
                *pad,
                device,
            )?)),
            Self::Classifier { model, data } => classify::reward(model, &data.eval, device),
            Self::Encoder { model, data, pad } => {
                retrieve::reward(model, &data.eval, batch_size, *pad, device)
            }
        }
    }

    /// The kind of reward [`Learner::eval_reward`] measures.
    pub fn reward_kind(&self) -> &'static str {
        match self {
            Self::Decoder { plans: Some(_), .. } => plan::REWARD_KIND,
            Self::Decoder { .. } => eval::REWARD_KIND,
            Self::Classifier { .. } => classify::REWARD_KIND,
            Self::Encoder { .. } => retrieve::REWARD_KIND,
        }
    }
}

/// The classifier of base `g`, which must have the `expected` dimensions, with the adapter
/// factors of `opts`.
pub fn classifier(
    g: &mut Gguf,
    expected: &crate::model::mlp::MlpConfig,
    opts: &ModelOptions<'_>,
) -> Result<MlpClassifier> {
    MlpClassifier::from_gguf(
        g,
        &MlpOptions {
            expected,
            weights: opts.weights,
            lora: opts.lora,
            factors: opts.factors,
            device: opts.device,
        },
    )
}

/// The sentence encoder of base `g`, which must have the `expected` dimensions, with the adapter
/// factors of `opts`.
pub fn encoder(g: &mut Gguf, expected: &BertDims, opts: &ModelOptions<'_>) -> Result<BertEncoder> {
    BertEncoder::from_gguf(
        g,
        &BertOptions {
            expected,
            weights: opts.weights,
            lora: opts.lora,
            factors: opts.factors,
            device: opts.device,
        },
    )
}
