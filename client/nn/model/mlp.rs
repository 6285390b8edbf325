//! The vision skill's classifier: a multilayer perceptron over an image's pixels (scaled to
//! [0, 1]), GELU between layers, and a class head, every linear layer able to carry LoRA.
//!
//! GGUF layout (`general.architecture = "aginet-mlp"`): metadata `aginet-mlp.input_length`,
//! `.hidden_length`, `.block_count` (hidden layers) and `.class_count`; tensors
//! `blk.N.ffn.weight` (hidden × in, quantized), `blk.N.ffn.bias` (f32), `output.weight`
//! (classes × hidden) and `output.bias`. Adapter sites are `blk.N.ffn` and `output`.

use crate::error::{Error, Result};
use crate::format::adapter::{LoraSpec, Site};
pub use crate::format::arch::MlpConfig;
use crate::format::gguf::Gguf;
use crate::format::tensors::{self, NamedTensors};
use crate::nn::frozen::FrozenLinear;
use crate::nn::lora::LoraLinear;
use crate::nn::model::decoder::WeightMode;
use crate::nn::model::shared;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::io::Cursor;

/// `general.architecture` of the classifier's GGUF.
pub const ARCHITECTURE: &str = "aginet-mlp";
/// The adaptable target of every hidden layer.
pub const LAYER_TARGET: &str = "ffn";
/// The adaptable class head.
pub const HEAD_TARGET: &str = "output";

impl MlpConfig {
    /// Reads the dimensions from the GGUF's metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let arch = g.get_str("general.architecture")?;
        if arch != ARCHITECTURE {
            return Err(g.error(format!(
                "general.architecture is {arch:?}, expected {ARCHITECTURE:?}"
            )));
        }
        let key = |k: &str| g.get_usize(&format!("{ARCHITECTURE}.{k}"));
        let cfg = Self {
            n_input: key("input_length")?,
            n_hidden: key("hidden_length")?,
            n_layer: key("block_count")?,
            n_class: key("class_count")?,
        };
        cfg.check()
            .map_err(|m| g.error(format!("dimensions: {m}")))?;
        Ok(cfg)
    }

    /// (out, in) of site `name` (`blk.N.ffn` or `output`), if it exists.
    fn shape(&self, name: &str) -> Option<(usize, usize)> {
        if name == HEAD_TARGET {
            return Some((self.n_class, self.n_hidden));
        }
        let layer: usize = name
            .strip_prefix("blk.")?
            .strip_suffix(&format!(".{LAYER_TARGET}"))?
            .parse()
            .ok()?;
        (layer < self.n_layer).then_some((
            self.n_hidden,
            if layer == 0 {
                self.n_input
            } else {
                self.n_hidden
            },
        ))
    }

    /// Every site in model order.
    fn all_sites(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..self.n_layer)
            .map(|l| format!("blk.{l}.{LAYER_TARGET}"))
            .collect();
        names.push(HEAD_TARGET.to_string());
        names
    }

    /// The adapted sites for `targets` (`ffn`, `output`), in model order; an unknown target is
    /// an error message.
    pub fn sites(&self, targets: &[String]) -> std::result::Result<Vec<Site>, String> {
        if let Some(bad) = targets
            .iter()
            .find(|t| *t != LAYER_TARGET && *t != HEAD_TARGET)
        {
            return Err(format!(
                "unknown LoRA target {bad:?}; {ARCHITECTURE} knows {LAYER_TARGET:?} and {HEAD_TARGET:?}"
            ));
        }
        Ok(self
            .all_sites()
            .into_iter()
            .filter(|s| {
                let target = if s == HEAD_TARGET {
                    HEAD_TARGET
                } else {
                    LAYER_TARGET
                };
                targets.iter().any(|t| t == target)
            })
            .map(|name| {
                let (out, inp) = self.shape(&name).expect("own site");
                Site { name, out, inp }
            })
            .collect())
    }

    /// Every tensor of the GGUF with its shape (outermost first), weights before biases.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for site in self.all_sites() {
            let (o, i) = self.shape(&site).expect("own site");
            out.push((format!("{site}.weight"), vec![o, i]));
            out.push((format!("{site}.bias"), vec![o]));
        }
        out
    }
}

/// What building the classifier needs besides the GGUF file.
pub struct MlpOptions<'a> {
    /// Dimensions the skill expects.
    pub expected: &'a MlpConfig,
    /// How frozen weights are held.
    pub weights: WeightMode,
    /// Which sites carry adapters.
    pub lora: &'a LoraSpec,
    /// The adapter factors by name (`Var`-backed ones are trained).
    pub factors: &'a NamedTensors,
    /// Where the computation runs.
    pub device: &'a Device,
}

/// One linear layer and its bias.
#[derive(Debug)]
struct Layer {
    linear: LoraLinear,
    bias: Tensor,
}

impl Layer {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.linear.forward(x)?.broadcast_add(&self.bias)
    }
}

/// The classifier, ready to compute logits.
#[derive(Debug)]
pub struct MlpClassifier {
    cfg: MlpConfig,
    layers: Vec<Layer>,
    head: Layer,
}

impl MlpClassifier {
    /// Builds the classifier from a GGUF base, checking its metadata and every tensor's shape
    /// against `opts.expected`.
    pub fn from_gguf(g: &mut Gguf, opts: &MlpOptions<'_>) -> Result<Self> {
        let found = MlpConfig::from_gguf(g)?;
        if &found != opts.expected {
            return Err(g.error(format!(
                "dimensions {found:?} disagree with the skill's {:?}",
                opts.expected
            )));
        }
        let mut layer = |site: &str, target: &str| -> Result<Layer> {
            let (out, inp) = found.shape(site).expect("own site");
            let weight = g.tensor(&format!("{site}.weight"), &[out, inp], opts.device)?;
            let bias = g
                .tensor(&format!("{site}.bias"), &[out], opts.device)?
                .dequantize(opts.device)?;
            Ok(Layer {
                linear: LoraLinear::new(
                    shared::frozen(weight, opts.weights, opts.device)?,
                    shared::lora_pair(opts.lora, opts.factors, site, target)?,
                ),
                bias,
            })
        };
        let layers = (0..found.n_layer)
            .map(|l| layer(&format!("blk.{l}.{LAYER_TARGET}"), LAYER_TARGET))
            .collect::<Result<Vec<_>>>()?;
        let head = layer(HEAD_TARGET, HEAD_TARGET)?;
        Ok(Self {
            cfg: found,
            layers,
            head,
        })
    }

    /// Builds the classifier from f32 tensors named as in the GGUF, without adapters; tensors
    /// backed by `Var`s are trained (how a project tool trains the base).
    pub fn from_dense(cfg: &MlpConfig, weights: &NamedTensors) -> Result<Self> {
        let get = |name: &str, dims: &[usize]| {
            tensors::shaped(weights, name, dims).map_err(|m| Error::model("<dense weights>", m))
        };
        let layer = |site: &str| -> Result<Layer> {
            let (out, inp) = cfg.shape(site).expect("own site");
            Ok(Layer {
                linear: LoraLinear::new(
                    FrozenLinear::dense(get(&format!("{site}.weight"), &[out, inp])?),
                    None,
                ),
                bias: get(&format!("{site}.bias"), &[out])?,
            })
        };
        Ok(Self {
            cfg: cfg.clone(),
            layers: (0..cfg.n_layer)
                .map(|l| layer(&format!("blk.{l}.{LAYER_TARGET}")))
                .collect::<Result<Vec<_>>>()?,
            head: layer(HEAD_TARGET)?,
        })
    }

    /// The classifier's dimensions.
    pub fn config(&self) -> &MlpConfig {
        &self.cfg
    }

    /// Class logits (batch, classes) of inputs (batch, n_input).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward(&h)?.gelu()?;
        }
        self.head.forward(&h)
    }
}

/// The GGUF bytes of a classifier with `weights` (f32, named as [`MlpConfig::tensors`] lists
/// them): weight matrices quantized to `quant`, biases kept in f32.
pub fn gguf_bytes(
    cfg: &MlpConfig,
    weights: &NamedTensors,
    quant: GgmlDType,
    name: &str,
) -> Result<Vec<u8>> {
    let mut quantized = Vec::new();
    for (tensor, dims) in cfg.tensors() {
        let t = tensors::shaped(weights, &tensor, &dims).map_err(|m| Error::model(name, m))?;
        let dtype = if dims.len() == 2 {
            quant
        } else {
            GgmlDType::F32
        };
        quantized.push((tensor, QTensor::quantize(&t, dtype)?));
    }
    use gguf_file::Value as V;
    let metadata = [
        ("general.architecture", V::String(ARCHITECTURE.into())),
        ("general.name", V::String(name.into())),
        ("aginet-mlp.input_length", V::U32(cfg.n_input as u32)),
        ("aginet-mlp.hidden_length", V::U32(cfg.n_hidden as u32)),
        ("aginet-mlp.block_count", V::U32(cfg.n_layer as u32)),
        ("aginet-mlp.class_count", V::U32(cfg.n_class as u32)),
    ];
    let meta: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let refs: Vec<(&str, &QTensor)> = quantized.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &meta, &refs)
        .map_err(|e| Error::model(name, format!("writing GGUF: {e}")))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::adapter::{a_name, b_name};
    use crate::nn::frozen::FrozenMode;
    use crate::test_util::max_abs_diff;
    use candle_core::Var;

    fn cfg() -> MlpConfig {
        MlpConfig {
            n_input: 64,
            n_hidden: 96,
            n_layer: 2,
            n_class: 10,
        }
    }

    fn random_weights(cfg: &MlpConfig) -> NamedTensors {
        cfg.tensors()
            .into_iter()
            .map(|(name, dims)| {
                let scale = 1.0 / (*dims.last().unwrap() as f64).sqrt();
                let t = (Tensor::randn(0f32, 1.0, dims, &Device::Cpu).unwrap() * scale).unwrap();
                (name, t)
            })
            .collect()
    }

    fn write(cfg: &MlpConfig, weights: &NamedTensors) -> (tempfile::TempDir, Gguf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mlp.gguf");
        let bytes = gguf_bytes(cfg, weights, GgmlDType::Q8_0, "test-mlp").unwrap();
        std::fs::write(&path, bytes).unwrap();
        let g = Gguf::open(&path).unwrap();
        (dir, g)
    }

    fn options<'a>(
        cfg: &'a MlpConfig,
        weights: WeightMode,
        lora: &'a LoraSpec,
        factors: &'a NamedTensors,
    ) -> MlpOptions<'a> {
        MlpOptions {
            expected: cfg,
            weights,
            lora,
            factors,
            device: &Device::Cpu,
        }
    }

    fn pixels(rows: usize) -> Tensor {
        Tensor::rand(0f32, 1.0, (rows, 64), &Device::Cpu).unwrap()
    }

    #[test]
    fn a_base_written_as_gguf_reads_back_with_its_weights() {
        let cfg = cfg();
        let weights = random_weights(&cfg);
        let (_dir, mut g) = write(&cfg, &weights);
        assert_eq!(MlpConfig::from_gguf(&g).unwrap(), cfg);
        let none = LoraSpec::none();
        let empty = NamedTensors::new();
        let read =
            MlpClassifier::from_gguf(&mut g, &options(&cfg, WeightMode::DenseF32, &none, &empty))
                .unwrap();
        let original = MlpClassifier::from_dense(&cfg, &weights).unwrap();
        let x = pixels(32);
        let (a, b) = (read.forward(&x).unwrap(), original.forward(&x).unwrap());
        assert_eq!(a.dims(), &[32, 10]);
        let diff = max_abs_diff(&a, &b);
        assert!(
            diff > 0.0 && diff < 0.05,
            "Q8_0 weights, f32 biases: {diff}"
        );
        let quantized = MlpClassifier::from_gguf(
            &mut g,
            &options(
                &cfg,
                WeightMode::Quantized(FrozenMode::default()),
                &none,
                &empty,
            ),
        )
        .unwrap();
        assert_eq!(max_abs_diff(&quantized.forward(&x).unwrap(), &a), 0.0);
    }

    #[test]
    fn an_adapter_starts_at_the_base_and_its_b_factors_train() {
        let cfg = cfg();
        let (_dir, mut g) = write(&cfg, &random_weights(&cfg));
        let lora = LoraSpec {
            targets: vec![LAYER_TARGET.into(), HEAD_TARGET.into()],
            rank: 4,
            alpha: 8.0,
            train_a: false,
        };
        let sites = cfg.sites(&lora.targets).unwrap();
        let names: Vec<(&str, usize, usize)> = sites
            .iter()
            .map(|s| (s.name.as_str(), s.out, s.inp))
            .collect();
        assert_eq!(
            names,
            [
                ("blk.0.ffn", 96, 64),
                ("blk.1.ffn", 96, 96),
                ("output", 10, 96)
            ]
        );
        let mut factors = NamedTensors::new();
        let mut bs = Vec::new();
        for s in &sites {
            let a = Tensor::randn(0f32, 1.0, (4, s.inp), &Device::Cpu).unwrap();
            let b = Var::zeros((s.out, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
            factors.insert(a_name(&s.name), a);
            factors.insert(b_name(&s.name), b.as_tensor().clone());
            bs.push(b);
        }
        let mode = WeightMode::Quantized(FrozenMode::default());
        let adapted =
            MlpClassifier::from_gguf(&mut g, &options(&cfg, mode, &lora, &factors)).unwrap();
        let none = LoraSpec::none();
        let empty = NamedTensors::new();
        let base = MlpClassifier::from_gguf(&mut g, &options(&cfg, mode, &none, &empty)).unwrap();
        let x = pixels(16);
        let y = adapted.forward(&x).unwrap();
        assert_eq!(
            max_abs_diff(&y, &base.forward(&x).unwrap()),
            0.0,
            "B = 0: the base"
        );
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        for (b, s) in bs.iter().zip(&sites) {
            let g = grads
                .get(b.as_tensor())
                .unwrap_or_else(|| panic!("{}", s.name));
            assert!(
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            );
        }
        let e = cfg.sites(&["attn_q".into()]).unwrap_err();
        assert!(e.contains("attn_q") && e.contains("ffn"), "{e}");
    }

    #[test]
    fn a_base_of_other_dimensions_or_architecture_is_refused_naming_the_file() {
        let cfg = cfg();
        let (_dir, mut g) = write(&cfg, &random_weights(&cfg));
        let wider = MlpConfig {
            n_hidden: 128,
            ..cfg.clone()
        };
        let none = LoraSpec::none();
        let empty = NamedTensors::new();
        let e = MlpClassifier::from_gguf(
            &mut g,
            &options(&wider, WeightMode::DenseF32, &none, &empty),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mlp.gguf") && e.contains("disagree"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        std::fs::write(
            &path,
            crate::nn::model::tiny::tiny_model_bytes(0, crate::nn::model::tiny::TinyQuant::Q8_0)
                .unwrap(),
        )
        .unwrap();
        let e = MlpConfig::from_gguf(&Gguf::open(&path).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("tiny.gguf") && e.contains("\"llama\""), "{e}");
        let flat = MlpConfig {
            n_layer: 0,
            ..cfg.clone()
        };
        let (_flat_dir, flat_gguf) = write(&flat, &random_weights(&flat));
        let e = MlpConfig::from_gguf(&flat_gguf).unwrap_err().to_string();
        assert!(
            e.contains("mlp.gguf") && e.contains("n_layer is 0, expected 1 to 1024"),
            "{e}"
        );
        let mut missing = random_weights(&cfg);
        missing.remove("output.bias");
        let e = gguf_bytes(&cfg, &missing, GgmlDType::Q8_0, "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no tensor output.bias"), "{e}");
    }
}
