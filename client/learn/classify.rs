//! What a classifier's work unit minimises and reports: the mean cross-entropy of a batch of
//! images ([`ClassifierObjective`], the training loop's [`Objective`]) and the `accuracy`
//! reward, the fraction of examples whose highest logit is their label.

use crate::error::Result;
use crate::format::adapter::{trainable_names, Adapter, LoraSpec};
use crate::format::gguf::Gguf;
use crate::format::tensors::make_trainable;
use crate::learn::mlp_base::{self, Example};
use crate::learn::objective::Objective;
use crate::nn::model::mlp::{MlpClassifier, MlpConfig, MlpOptions};
use crate::nn::model::WeightMode;
use crate::task::image_data::ImageDataset;
use candle_core::{Device, Tensor, Var};

/// The reward kind of a classifier's work unit.
pub const REWARD_KIND: &str = crate::format::config::reward_kind::ACCURACY;

/// A classifier's objective over a work unit's images.
pub struct ClassifierObjective<'a> {
    /// The classifier, built over the optimizer's variables.
    pub model: &'a MlpClassifier,
    /// The images.
    pub data: &'a ImageDataset,
    /// Where tensors live.
    pub device: &'a Device,
}

impl Objective for ClassifierObjective<'_> {
    fn loss(&self, picked: &[usize]) -> Result<(Tensor, usize)> {
        let examples: Vec<Example> = picked.iter().map(|&i| self.data.train[i].clone()).collect();
        let (x, y) = mlp_base::batch(&examples, self.device)?;
        Ok((mlp_base::cross_entropy(self.model, &x, &y)?, examples.len()))
    }
}

/// The classifier of base `g` (of dimensions `cfg`) carrying `adapter` under `lora`, with the
/// factors a run trains (every B, and every A when `train_a`) made `Var`s: the model and the
/// optimizer's parameters.
pub fn adapted(
    g: &mut Gguf,
    cfg: &MlpConfig,
    lora: &LoraSpec,
    adapter: &Adapter,
    weights: WeightMode,
) -> Result<(MlpClassifier, Vec<(String, Var)>)> {
    let sites = cfg
        .sites(&lora.targets)
        .map_err(|m| crate::Error::model(g.path(), m))?;
    let mut factors = adapter.tensors.clone();
    let vars = make_trainable(&mut factors, &trainable_names(&sites, lora.train_a))?;
    let model = MlpClassifier::from_gguf(
        g,
        &MlpOptions {
            expected: cfg,
            weights,
            lora,
            factors: &factors,
            device: &Device::Cpu,
        },
    )?;
    Ok((model, vars))
}

/// The `accuracy` reward of the classifier on `examples`, computed on `device`.
pub fn reward(model: &MlpClassifier, examples: &[Example], device: &Device) -> Result<f64> {
    mlp_base::accuracy(model, examples, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::adapter::AdapterHeader;
    use crate::learn::mlp_base::{train as train_base, BaseTraining};
    use crate::learn::optim::AdamW;
    use crate::learn::train::{train, Outcome, TrainJob, TrainState, Unattended};
    use crate::nn::frozen::FrozenMode;
    use crate::nn::model::mlp::gguf_bytes;
    use crate::task::digits::{example, pair, shifted, Digit, Shift};
    use candle_core::quantized::GgmlDType;
    use rand::{Rng, SeedableRng};

    /// Images of four classes, each a bright bar in its own quarter of rows, with noise.
    fn images(n: usize, seed: u64) -> Vec<Digit> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let label = (i % 4) as u8;
                let mut pixels = [0u8; 64];
                for (j, p) in pixels.iter_mut().enumerate() {
                    let bright = j / 16 == label as usize;
                    *p = if bright {
                        rng.random_range(10..17)
                    } else {
                        rng.random_range(0..6)
                    };
                }
                Digit { pixels, label }
            })
            .collect()
    }

    #[test]
    fn the_training_loop_adapts_a_classifier_to_shifted_images() {
        let cfg = MlpConfig {
            n_input: 64,
            n_hidden: 64,
            n_layer: 1,
            n_class: 10,
        };
        // A base that knows the images as drawn.
        let drawn: Vec<Example> = images(400, 1).iter().map(example).collect();
        let weights = train_base(
            &cfg,
            &drawn,
            &BaseTraining {
                epochs: 5,
                ..Default::default()
            },
            |_, _| Ok(()),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.gguf");
        std::fs::write(
            &path,
            gguf_bytes(&cfg, &weights, GgmlDType::Q8_0, "t").unwrap(),
        )
        .unwrap();

        // A work unit's data: the images moved down by one row, as JSONL.
        let lines: String = images(240, 2)
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let p = pair(&shifted(&shifted(d, Shift::Down), Shift::Down));
                let split = if i < 200 { "train" } else { "eval" };
                serde_json::json!({"prompt": p.prompt, "completion": p.completion, "split": split})
                    .to_string()
                    + "\n"
            })
            .collect();
        let data = ImageDataset::parse(lines.as_bytes()).unwrap();

        let lora = LoraSpec {
            targets: vec!["ffn".into(), "output".into()],
            rank: 4,
            alpha: 8.0,
            train_a: false,
        };
        let sites = cfg.sites(&lora.targets).unwrap();
        let adapter =
            Adapter::initial(AdapterHeader::new("vision", "sha", 0, &lora), &sites, 1).unwrap();
        let mut g = Gguf::open(&path).unwrap();
        let mode = WeightMode::Quantized(FrozenMode::default());
        let (model, vars) = adapted(&mut g, &cfg, &lora, &adapter, mode).unwrap();
        let manifest = crate::format::manifest::Manifest::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
            "tiny",
        )
        .unwrap();
        let mut config = manifest.work_config(3, 0);
        config.steps = 60;
        config.hyper = mlp_base::adam(1e-2, 5, 16);
        let before = reward(&model, &data.eval, &Device::Cpu).unwrap();
        let mut state = TrainState::new(data.train.len(), config.seed, before);
        let mut opt = AdamW::new(vars, config.hyper.clone()).unwrap();
        let objective = ClassifierObjective {
            model: &model,
            data: &data,
            device: &Device::Cpu,
        };
        let job = TrainJob {
            config: &config,
            objective: &objective,
            checkpoint_path: &dir.path().join("checkpoint"),
            inputs_key: "k",
            started: std::time::Instant::now(),
        };
        let outcome = train(&job, &mut state, &mut opt, &mut Unattended).unwrap();
        assert_eq!(outcome, Outcome::Finished);
        assert_eq!(state.tokens, 60 * 16, "a classifier counts examples");
        let after = reward(&model, &data.eval, &Device::Cpu).unwrap();
        let (first, last) = (
            state.losses[..10].iter().sum::<f32>(),
            state.losses[50..].iter().sum::<f32>(),
        );
        assert!(last < first, "the loss falls: {first} -> {last}");
        assert!(
            after > before + 0.2,
            "accuracy on the shifted images: {before} -> {after}"
        );
    }
}
