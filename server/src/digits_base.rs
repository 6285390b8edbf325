//! `digits-base`: the vision skill's base, made by the project rather than downloaded. An MLP
//! classifier (64 pixels → 256 → 256 → 10) trained from scratch on the centred training images
//! of the 8×8 digits, written as GGUF with Q8_0 weights. The skill's work units then adapt it
//! to the digits shifted by one pixel, which it was never shown.

use aginet::format::files::{sha256_hex, write_atomic};
use aginet::format::gguf::Gguf;
use aginet::learn::mlp_base::{self, BaseTraining};
use aginet::nn::model::mlp::{self, MlpClassifier, MlpConfig, MlpOptions};
use aginet::nn::model::WeightMode;
use aginet::task::digits::{self, Shift, TASK_SHIFTS};
use anyhow::{Context, Result};
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use std::path::Path;

/// The base's dimensions.
pub fn config() -> MlpConfig {
    MlpConfig {
        n_input: digits::SIDE * digits::SIDE,
        n_hidden: 256,
        n_layer: 2,
        n_class: 10,
    }
}

/// Trains the base for `epochs` from `seed` on the digits in `csv`, writes it to `out` and
/// returns its sha256; reports the held-out accuracy (centred and shifted) as it goes.
pub fn make(csv: &Path, out: &Path, seed: u64, epochs: usize) -> Result<String> {
    let images = digits::read_csv(csv)?;
    let train = digits::examples(&images, false, &[Shift::None]);
    let centred = digits::examples(&images, true, &[Shift::None]);
    let shifted = digits::examples(&images, true, &TASK_SHIFTS);
    let cfg = config();
    let how = BaseTraining {
        epochs,
        seed,
        ..Default::default()
    };
    let weights = mlp_base::train(&cfg, &train, &how, |epoch, model| {
        if (epoch + 1) % 5 == 0 || epoch + 1 == epochs {
            eprintln!(
                "epoch {}: held-out accuracy {:.3} centred, {:.3} shifted",
                epoch + 1,
                mlp_base::accuracy(model, &centred, &Device::Cpu)?,
                mlp_base::accuracy(model, &shifted, &Device::Cpu)?
            );
        }
        Ok(())
    })?;
    let name = format!("aginet-digits-mlp-seed{seed}");
    let bytes = mlp::gguf_bytes(&cfg, &weights, GgmlDType::Q8_0, &name)?;
    write_atomic(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    // What volunteers will load: the quantized file, read back.
    let mut g = Gguf::open(out)?;
    let none = aginet::format::adapter::LoraSpec::none();
    let model = MlpClassifier::from_gguf(
        &mut g,
        &MlpOptions {
            expected: &cfg,
            weights: WeightMode::DenseF32,
            lora: &none,
            factors: &Default::default(),
            device: &Device::Cpu,
        },
    )?;
    eprintln!(
        "{} (Q8_0): held-out accuracy {:.3} centred, {:.3} shifted",
        out.display(),
        mlp_base::accuracy(&model, &centred, &Device::Cpu)?,
        mlp_base::accuracy(&model, &shifted, &Device::Cpu)?
    );
    Ok(sha256_hex(&bytes))
}
