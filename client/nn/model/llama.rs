//! A llama-style decoder (RMSNorm, rotary attention with grouped KV heads, SwiGLU MLP) over a
//! frozen GGUF base, with LoRA on any of its projections. Training only: logits for every position,
//! no KV cache.

use crate::error::Result;
use crate::format::adapter::{LoraSpec, Site};
pub use crate::format::arch::LlamaConfig;
use crate::format::gguf::Gguf;
use crate::format::tensors::NamedTensors;
use crate::nn::frozen::FrozenLinear;
use crate::nn::lora::{LoraLinear, LoraPair};
use crate::nn::model::decoder::{head_nll_rows, Decoder, WeightMode};
use crate::nn::model::rope::Rope;
use crate::nn::model::shared;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};

/// Projections of a block that can carry an adapter, by GGUF name.
pub const BLOCK_TARGETS: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];
/// The output head, adaptable too.
pub const HEAD_TARGET: &str = shared::HEAD_TARGET;

impl LlamaConfig {
    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Reads the dimensions from a GGUF's `llama.*` metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let arch = g.get_str("general.architecture")?;
        if arch != "llama" {
            return Err(g.error(format!(
                "general.architecture is {arch:?}, expected \"llama\""
            )));
        }
        let n_embd = g.get_usize("llama.embedding_length")?;
        let n_vocab = match g.get_usize("llama.vocab_size") {
            Ok(v) => v,
            Err(_) => g.get_strings("tokenizer.ggml.tokens")?.len(),
        };
        let cfg = Self {
            n_layer: g.get_usize("llama.block_count")?,
            n_embd,
            n_head: g.get_usize("llama.attention.head_count")?,
            n_head_kv: g.get_usize("llama.attention.head_count_kv")?,
            n_ff: g.get_usize("llama.feed_forward_length")?,
            n_vocab,
        };
        cfg.check()
            .map_err(|m| g.error(format!("dimensions: {m}")))?;
        Ok(cfg)
    }

    /// (out, in) of a block projection.
    fn projection_shape(&self, target: &str) -> Option<(usize, usize)> {
        shared::projection_shape(
            &shared::Widths {
                n_embd: self.n_embd,
                q: self.n_head * self.head_dim(),
                kv: self.n_head_kv * self.head_dim(),
                n_ff: self.n_ff,
                n_vocab: self.n_vocab,
            },
            target,
        )
    }

    /// Every adapted site for `targets`, in model order; an unknown target is an error message.
    pub fn sites(&self, targets: &[String]) -> std::result::Result<Vec<Site>, String> {
        shared::sites(
            "llama",
            self.n_layer,
            targets,
            &BLOCK_TARGETS,
            HEAD_TARGET,
            |t| self.projection_shape(t),
        )
    }
}

/// One transformer block.
#[derive(Debug)]
struct Block {
    attn_norm: Tensor,
    q: LoraLinear,
    k: LoraLinear,
    v: LoraLinear,
    o: LoraLinear,
    ffn_norm: Tensor,
    gate: LoraLinear,
    up: LoraLinear,
    down: LoraLinear,
}

/// The decoder, ready to compute training logits.
#[derive(Debug)]
pub struct Llama {
    cfg: LlamaConfig,
    rms_eps: f32,
    embedding: Embedding,
    blocks: Vec<Block>,
    output_norm: Tensor,
    head: LoraLinear,
    rope: Rope,
}

/// The token table: quantized rows looked up on demand, or a dense f32 table.
#[derive(Debug)]
enum Embedding {
    Quantized(Box<QTensor>),
    Dense(Tensor),
}

/// What a loader needs besides the GGUF file.
pub struct LoadOptions<'a> {
    /// Dimensions the skill expects.
    pub expected: &'a LlamaConfig,
    /// How frozen weights are held.
    pub weights: WeightMode,
    /// Which sites carry adapters.
    pub lora: &'a LoraSpec,
    /// The adapter factors by name (`Var`-backed ones are trained).
    pub factors: &'a NamedTensors,
    /// Longest sequence the model will see.
    pub max_seq_len: usize,
    /// Where the computation runs.
    pub device: &'a Device,
}

/// A loader bound to one GGUF file and its options.
struct Loader<'a, 'b> {
    g: &'a mut Gguf,
    opts: &'a LoadOptions<'b>,
}

impl Loader<'_, '_> {
    fn qtensor(&mut self, name: &str, dims: &[usize]) -> Result<QTensor> {
        self.g.tensor(name, dims, self.opts.device)
    }

    fn frozen(&mut self, weight: QTensor) -> Result<FrozenLinear> {
        shared::frozen(weight, self.opts.weights, self.opts.device)
    }

    fn lora(&self, site: &str, target: &str) -> Result<Option<LoraPair>> {
        shared::lora_pair(self.opts.lora, self.opts.factors, site, target)
    }
}

/// Where a block's weights come from: a GGUF file ([`Loader`]) or named f32 tensors
/// ([`DenseSource`]).
trait BlockSource {
    /// The RMSNorm weight `name`, of `n` values.
    fn norm(&mut self, name: &str, n: usize) -> Result<Tensor>;
    /// The projection `target` of block `layer`.
    fn linear(&mut self, layer: usize, target: &str) -> Result<LoraLinear>;

    /// Block `layer`, whose hidden size is `n_embd`.
    fn block(&mut self, layer: usize, n_embd: usize) -> Result<Block> {
        Ok(Block {
            attn_norm: self.norm(&format!("blk.{layer}.attn_norm.weight"), n_embd)?,
            q: self.linear(layer, "attn_q")?,
            k: self.linear(layer, "attn_k")?,
            v: self.linear(layer, "attn_v")?,
            o: self.linear(layer, "attn_output")?,
            ffn_norm: self.norm(&format!("blk.{layer}.ffn_norm.weight"), n_embd)?,
            gate: self.linear(layer, "ffn_gate")?,
            up: self.linear(layer, "ffn_up")?,
            down: self.linear(layer, "ffn_down")?,
        })
    }
}

impl BlockSource for Loader<'_, '_> {
    fn norm(&mut self, name: &str, n: usize) -> Result<Tensor> {
        Ok(self.qtensor(name, &[n])?.dequantize(self.opts.device)?)
    }

    fn linear(&mut self, layer: usize, target: &str) -> Result<LoraLinear> {
        let (out, inp) = self
            .opts
            .expected
            .projection_shape(target)
            .expect("known target");
        let site = format!("blk.{layer}.{target}");
        let weight = self.qtensor(&format!("{site}.weight"), &[out, inp])?;
        Ok(LoraLinear::new(
            self.frozen(weight)?,
            self.lora(&site, target)?,
        ))
    }
}

/// Named f32 tensors (maybe `Var`-backed), checked against the dimensions; no adapters.
struct DenseSource<'a> {
    cfg: &'a LlamaConfig,
    weights: &'a NamedTensors,
}

impl DenseSource<'_> {
    fn get(&self, name: &str, dims: &[usize]) -> Result<Tensor> {
        crate::format::tensors::shaped(self.weights, name, dims)
            .map_err(|m| crate::Error::model("<dense weights>", m))
    }
}

impl BlockSource for DenseSource<'_> {
    fn norm(&mut self, name: &str, n: usize) -> Result<Tensor> {
        self.get(name, &[n])
    }

    fn linear(&mut self, layer: usize, target: &str) -> Result<LoraLinear> {
        let (out, inp) = self.cfg.projection_shape(target).expect("known target");
        let w = self.get(&format!("blk.{layer}.{target}.weight"), &[out, inp])?;
        Ok(LoraLinear::new(FrozenLinear::dense(w), None))
    }
}

impl Llama {
    /// Builds the decoder from a GGUF base, checking its metadata and every tensor's shape
    /// against `opts.expected`.
    pub fn from_gguf(g: &mut Gguf, opts: &LoadOptions<'_>) -> Result<Self> {
        let found = LlamaConfig::from_gguf(g)?;
        if &found != opts.expected {
            return Err(g.error(format!(
                "dimensions {found:?} disagree with the skill's {:?}",
                opts.expected
            )));
        }
        let cfg = found;
        let rms_eps = g.get_f32("llama.attention.layer_norm_rms_epsilon")?;
        let rope_base = g.get_f32_or("llama.rope.freq_base", 10_000.0)?;
        let mut loader = Loader { g, opts };
        let embd = loader.qtensor("token_embd.weight", &[cfg.n_vocab, cfg.n_embd])?;
        let head_weight = if loader.g.has_tensor("output.weight") {
            loader.qtensor("output.weight", &[cfg.n_vocab, cfg.n_embd])?
        } else {
            loader.qtensor("token_embd.weight", &[cfg.n_vocab, cfg.n_embd])?
        };
        let head = LoraLinear::new(
            loader.frozen(head_weight)?,
            loader.lora(HEAD_TARGET, HEAD_TARGET)?,
        );
        let embedding = match opts.weights {
            WeightMode::Quantized(_) => Embedding::Quantized(Box::new(embd)),
            WeightMode::DenseF32 => Embedding::Dense(embd.dequantize(opts.device)?),
        };
        let blocks = (0..cfg.n_layer)
            .map(|l| loader.block(l, cfg.n_embd))
            .collect::<Result<Vec<_>>>()?;
        let output_norm = loader.norm("output_norm.weight", cfg.n_embd)?;
        let rope = Rope::new(cfg.head_dim(), opts.max_seq_len, rope_base, opts.device)?;
        Ok(Self {
            cfg,
            rms_eps,
            embedding,
            blocks,
            output_norm,
            head,
            rope,
        })
    }

    /// Builds the decoder from f32 tensors named as in the GGUF (`token_embd.weight`,
    /// `blk.N.attn_q.weight`, …; the head is tied to the embedding unless `output.weight` is
    /// given), without adapters: the way to train every weight of a base, since tensors backed by
    /// `Var`s receive gradients through every product, the embedding and the head.
    pub fn from_dense(
        cfg: &LlamaConfig,
        weights: &NamedTensors,
        rms_eps: f32,
        max_seq_len: usize,
        device: &Device,
    ) -> Result<Self> {
        let mut src = DenseSource { cfg, weights };
        let embd = src.get("token_embd.weight", &[cfg.n_vocab, cfg.n_embd])?;
        let head = match weights.contains_key("output.weight") {
            true => src.get("output.weight", &[cfg.n_vocab, cfg.n_embd])?,
            false => embd.clone(),
        };
        let blocks = (0..cfg.n_layer)
            .map(|l| src.block(l, cfg.n_embd))
            .collect::<Result<Vec<_>>>()?;
        let output_norm = src.get("output_norm.weight", &[cfg.n_embd])?;
        Ok(Self {
            cfg: cfg.clone(),
            rms_eps,
            embedding: Embedding::Dense(embd),
            blocks,
            output_norm,
            head: LoraLinear::new(FrozenLinear::dense(head), None),
            rope: Rope::new(cfg.head_dim(), max_seq_len, 10_000.0, device)?,
        })
    }

    /// The model's dimensions.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Bytes of frozen weights held resident (quantized weights plus any backward copies).
    pub fn resident_weight_bytes(&self) -> usize {
        let lin = |l: &LoraLinear| l.frozen().resident_bytes();
        let blocks: usize = self
            .blocks
            .iter()
            .map(|b| {
                lin(&b.q)
                    + lin(&b.k)
                    + lin(&b.v)
                    + lin(&b.o)
                    + lin(&b.gate)
                    + lin(&b.up)
                    + lin(&b.down)
            })
            .sum();
        blocks + lin(&self.head)
    }

    /// Logits (batch, seq, vocab) for token ids (batch, seq).
    pub fn forward(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        Decoder::forward(self, tokens)
    }
}

impl Decoder for Llama {
    fn hidden(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        let (_, t) = tokens.dims2()?;
        let mut x = match &self.embedding {
            Embedding::Quantized(q) => q.embedding(tokens)?,
            Embedding::Dense(w) => {
                let (b, t) = tokens.dims2()?;
                w.index_select(&tokens.flatten_all()?, 0)?
                    .reshape((b, t, self.cfg.n_embd))?
            }
        };
        let mask = shared::mask(t, t, x.device())?;
        for block in &self.blocks {
            x = self.block_forward(block, &x, &mask)?;
        }
        super::rms_norm::rms_norm(&x, &self.output_norm, self.rms_eps)
    }

    fn head(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        self.head.forward(hidden)
    }

    fn nll_rows(&self, hidden: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
        head_nll_rows(&self.head, hidden, targets)
    }
}

impl Llama {
    fn block_forward(
        &self,
        blk: &Block,
        x: &Tensor,
        mask: &shared::Mask,
    ) -> candle_core::Result<Tensor> {
        let h = super::rms_norm::rms_norm(x, &blk.attn_norm, self.rms_eps)?;
        let x = (x + self.attention(blk, &h, mask)?)?;
        let h = super::rms_norm::rms_norm(&x, &blk.ffn_norm, self.rms_eps)?;
        let mlp = blk
            .down
            .forward(&(blk.gate.forward(&h)?.silu()? * blk.up.forward(&h)?)?)?;
        x + mlp
    }

    fn attention(
        &self,
        blk: &Block,
        x: &Tensor,
        mask: &shared::Mask,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (nh, nkv, hd) = (self.cfg.n_head, self.cfg.n_head_kv, self.cfg.head_dim());
        let heads = |y: Tensor, n: usize| y.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous();
        let q = self
            .rope
            .apply_interleaved(&heads(blk.q.forward(x)?, nh)?)?;
        let k = self
            .rope
            .apply_interleaved(&heads(blk.k.forward(x)?, nkv)?)?;
        let v = heads(blk.v.forward(x)?, nkv)?;
        blk.o.forward(&shared::attend(&q, &k, &v, mask)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::model::tiny::{tiny_config, tiny_model_bytes, TinyQuant};
    use candle_core::Var;

    /// The tiny model's tensors dequantized, by GGUF name.
    fn tiny_dense(g: &mut Gguf, cfg: &LlamaConfig) -> NamedTensors {
        let dev = Device::Cpu;
        let mut names = vec![
            (
                "token_embd.weight".to_string(),
                vec![cfg.n_vocab, cfg.n_embd],
            ),
            ("output_norm.weight".to_string(), vec![cfg.n_embd]),
        ];
        for l in 0..cfg.n_layer {
            names.push((format!("blk.{l}.attn_norm.weight"), vec![cfg.n_embd]));
            names.push((format!("blk.{l}.ffn_norm.weight"), vec![cfg.n_embd]));
            for t in BLOCK_TARGETS {
                let (out, inp) = cfg.projection_shape(t).unwrap();
                names.push((format!("blk.{l}.{t}.weight"), vec![out, inp]));
            }
        }
        names
            .into_iter()
            .map(|(n, dims)| {
                let t = g.tensor(&n, &dims, &dev).unwrap().dequantize(&dev).unwrap();
                (n, t)
            })
            .collect()
    }

    #[test]
    fn from_dense_computes_what_the_dense_gguf_path_does_and_trains_every_weight() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        std::fs::write(&path, tiny_model_bytes(0, TinyQuant::Q8_0).unwrap()).unwrap();
        let mut g = Gguf::open(&path).unwrap();
        let cfg = tiny_config();
        let no_adapter = LoraSpec::none();
        let dev = Device::Cpu;
        let reference = Llama::from_gguf(
            &mut g,
            &LoadOptions {
                expected: &cfg,
                weights: WeightMode::DenseF32,
                lora: &no_adapter,
                factors: &NamedTensors::new(),
                max_seq_len: 16,
                device: &dev,
            },
        )
        .unwrap();
        let vars: BTreeMapOfVars = tiny_dense(&mut g, &cfg)
            .into_iter()
            .map(|(n, t)| (n, Var::from_tensor(&t).unwrap()))
            .collect();
        let weights = vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let dense = Llama::from_dense(&cfg, &weights, 1e-5, 16, &dev).unwrap();
        let tokens = Tensor::new(&[[256u32, 104, 105, 10, 50, 257]], &dev).unwrap();
        let a = reference.forward(&tokens).unwrap();
        let b = dense.forward(&tokens).unwrap();
        let diff = crate::test_util::max_abs_diff(&a, &b);
        assert_eq!(diff, 0.0, "same weights, same arithmetic");
        let grads = b.sum_all().unwrap().backward().unwrap();
        for (name, v) in &vars {
            if name.contains("norm") {
                continue; // RMSNorm's op passes gradients to its input only.
            }
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{name} gets a zero gradient");
        }
        let mut missing = weights_without(&weights, "blk.1.ffn_up.weight");
        assert!(Llama::from_dense(&cfg, &missing, 1e-5, 16, &dev)
            .unwrap_err()
            .to_string()
            .contains("no tensor blk.1.ffn_up.weight"));
        missing.insert(
            "blk.1.ffn_up.weight".into(),
            Tensor::zeros((3, 3), candle_core::DType::F32, &dev).unwrap(),
        );
        assert!(Llama::from_dense(&cfg, &missing, 1e-5, 16, &dev)
            .unwrap_err()
            .to_string()
            .contains("is [3, 3]"));
    }

    type BTreeMapOfVars = std::collections::BTreeMap<String, Var>;

    fn weights_without(w: &NamedTensors, name: &str) -> NamedTensors {
        w.iter()
            .filter(|(n, _)| n.as_str() != name)
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    }
}
