//! What differs between the kinds of network a work unit trains: how its data is read, what a
//! step minimises, and how the reward is measured. Decoders (the language skills) learn
//! completions and report `token_likelihood` (or, for the planner, `plan_success`: plans
//! generated and simulated); classifiers (vision) learn labels and report
//! `accuracy`; encoders (memory) learn to retrieve a query's passage and report `recall_at_5`.
//! The config's architecture picks one.

use crate::error::{Error, Result};
use crate::format::config::Architecture;
use crate::format::gguf::Gguf;
use crate::learn::classify::{self, ClassifierObjective};
use crate::learn::eval;
use crate::learn::objective::Objective;
use crate::learn::plan;
use crate::learn::retrieve::{self, EncoderObjective, PairDataset};
use crate::learn::train::DecoderObjective;
use crate::nn::model::bert::{BertDims, BertEncoder, BertOptions};
use crate::nn::model::mlp::{MlpClassifier, MlpOptions};
use crate::nn::model::{self, Decoder, ModelOptions};
use crate::task::image_data::ImageDataset;
use crate::text::data::{Dataset, Sequence};
use crate::text::tokenizer::Tokenizer;
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
        /// The base's tokenizer.
        tok: Box<dyn Tokenizer>,
        /// Whether the reward is `plan_success` (plans generated and simulated), not
        /// `token_likelihood`.
        plans: bool,
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
        /// The base's tokenizer.
        tok: Box<dyn Tokenizer>,
    },
}

impl Learner {
    /// Reads `data` as the architecture's kind of examples (a decoder's through the base's own
    /// tokenizer; `None`: no examples of its own, to score files with [`Learner::reward_of`]),
    /// then builds the network from base `g` with `opts`, to report `reward` (the
    /// architecture's first kind when `None`; an unknown one is a config error naming `config`).
    pub fn load(
        architecture: &Architecture,
        reward: Option<&str>,
        g: &mut Gguf,
        data: Option<&Path>,
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
                let data = data
                    .map(ImageDataset::read)
                    .transpose()?
                    .unwrap_or_default();
                let model = classifier(g, expected, opts)?;
                Self::Classifier { model, data }
            }
            Architecture::Bert(expected) => {
                let tok = crate::text::from_gguf(g)?;
                let data = data
                    .map(|path| PairDataset::read(path, tok.as_ref(), opts.max_seq_len))
                    .transpose()?
                    .unwrap_or_default();
                let model = encoder(g, expected, opts)?;
                Self::Encoder { model, data, tok }
            }
            _ => {
                let tok = crate::text::from_gguf(g)?;
                let data = data
                    .map(|path| Dataset::read(path, tok.as_ref(), opts.max_seq_len))
                    .transpose()?
                    .unwrap_or_default();
                let model = model::load(architecture, g, opts)?;
                Self::Decoder {
                    model,
                    data,
                    tok,
                    plans: reward == plan::REWARD_KIND,
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
                model, data, tok, ..
            } => Box::new(DecoderObjective {
                model: model.as_ref(),
                data,
                pad: tok.pad(),
                device,
            }),
            Self::Classifier { model, data } => Box::new(ClassifierObjective {
                model,
                data,
                device,
            }),
            Self::Encoder { model, data, tok } => Box::new(EncoderObjective {
                model,
                data,
                pad: tok.pad(),
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
                tok,
                plans,
            } => decoder_reward(
                model.as_ref(),
                tok.as_ref(),
                *plans,
                &data.eval,
                batch_size,
                max_len,
                device,
            ),
            Self::Classifier { model, data } => classify::reward(model, &data.eval, device),
            Self::Encoder { model, data, tok } => {
                retrieve::reward(model, &data.eval, batch_size, tok.pad(), device)
            }
        }
    }

    /// The reward on every example of the data file `path` whatever its split (the server's
    /// held-out sets), read as [`Learner::load`] reads its own, no example longer than
    /// `max_len` tokens.
    pub fn reward_of(
        &self,
        path: &Path,
        batch_size: usize,
        max_len: usize,
        device: &Device,
    ) -> Result<f64> {
        match self {
            Self::Decoder {
                model, tok, plans, ..
            } => {
                let examples = crate::text::data::read_all(path, tok.as_ref(), max_len)?;
                decoder_reward(
                    model.as_ref(),
                    tok.as_ref(),
                    *plans,
                    &examples,
                    batch_size,
                    max_len,
                    device,
                )
            }
            Self::Classifier { model, .. } => {
                classify::reward(model, &ImageDataset::read_all(path)?, device)
            }
            Self::Encoder { model, tok, .. } => {
                let pairs = PairDataset::read_all(path, tok.as_ref(), max_len)?;
                retrieve::reward(model, &pairs, batch_size, tok.pad(), device)
            }
        }
    }

    /// The kind of reward [`Learner::eval_reward`] measures.
    pub fn reward_kind(&self) -> &'static str {
        match self {
            Self::Decoder { plans: true, .. } => plan::REWARD_KIND,
            Self::Decoder { .. } => eval::REWARD_KIND,
            Self::Classifier { .. } => classify::REWARD_KIND,
            Self::Encoder { .. } => retrieve::REWARD_KIND,
        }
    }
}

/// A decoder's reward on `seqs`: the fraction of generated plans the simulator accepts when
/// `plans`, else the `token_likelihood` of the reference completions.
fn decoder_reward(
    model: &dyn Decoder,
    tok: &dyn Tokenizer,
    plans: bool,
    seqs: &[Sequence],
    batch_size: usize,
    max_len: usize,
    device: &Device,
) -> Result<f64> {
    if plans {
        return Ok(plan::score(model, tok, seqs, batch_size, max_len, device)?.accepted);
    }
    let nll = eval::mean_nll(model, seqs, batch_size, tok.pad(), device)?;
    Ok(eval::reward_from_nll(nll))
}

/// The classifier of base `g`, which must have the `expected` dimensions, with the adapter
/// factors of `opts`.
pub fn classifier(
    g: &mut Gguf,
    expected: &crate::nn::model::mlp::MlpConfig,
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
