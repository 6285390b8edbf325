//! The memory skill's sentence encoder: a BERT encoder over a frozen GGUF base
//! (`general.architecture = "bert"`, llama.cpp's names), with LoRA on any of its projections,
//! mean-pooled and L2-normalised into one embedding per text, as sentence-transformers'
//! all-MiniLM-L6-v2 defines it.
//!
//! As BERT defines it: word + absolute position + token-type (always type 0 here) embeddings,
//! LayerNorm; per block, bidirectional multi-head attention over the non-padding positions with
//! biased projections, residual and LayerNorm, then a GELU (erf) MLP, residual and LayerNorm
//! (post-norm). The embedding is the mean of the last hidden states over the text's positions,
//! divided by its L2 norm.

use crate::error::{Error, Result};
use crate::format::adapter::{LoraSpec, Site};
pub use crate::format::arch::BertDims;
use crate::format::gguf::Gguf;
use crate::format::tensors::NamedTensors;
use crate::nn::lora::LoraLinear;
use crate::nn::model::decoder::WeightMode;
use crate::nn::model::shared;
use candle_core::{DType, Device, Tensor, D};

/// `general.architecture` of the encoder's GGUF.
pub const ARCHITECTURE: &str = "bert";
/// The adaptable projections of every block, in model order.
pub const BLOCK_TARGETS: [&str; 6] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_up",
    "ffn_down",
];
/// Added to the attention scores of padding keys: their weight underflows to exactly 0.
const MASKED: f64 = -1e9;

impl BertDims {
    /// Reads the dimensions from a GGUF's `bert.*` metadata and its token list.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let arch = g.get_str("general.architecture")?;
        if arch != ARCHITECTURE {
            return Err(g.error(format!(
                "general.architecture is {arch:?}, expected {ARCHITECTURE:?}"
            )));
        }
        let dims = Self {
            n_layer: g.get_usize("bert.block_count")?,
            n_embd: g.get_usize("bert.embedding_length")?,
            n_head: g.get_usize("bert.attention.head_count")?,
            n_ff: g.get_usize("bert.feed_forward_length")?,
            n_vocab: g.get_strings("tokenizer.ggml.tokens")?.len(),
            n_ctx: g.get_usize("bert.context_length")?,
        };
        dims.check()
            .map_err(|m| g.error(format!("dimensions: {m}")))?;
        Ok(dims)
    }

    /// (out, in) of a projection by GGUF target name; `None` for an unknown one.
    pub fn projection_shape(&self, target: &str) -> Option<(usize, usize)> {
        Some(match target {
            "attn_q" | "attn_k" | "attn_v" | "attn_output" => (self.n_embd, self.n_embd),
            "ffn_up" => (self.n_ff, self.n_embd),
            "ffn_down" => (self.n_embd, self.n_ff),
            _ => return None,
        })
    }

    /// Every adapted site for `targets`, in model order; an unknown target is an error message.
    pub fn sites(&self, targets: &[String]) -> std::result::Result<Vec<Site>, String> {
        if let Some(bad) = targets.iter().find(|t| self.projection_shape(t).is_none()) {
            return Err(format!(
                "unknown LoRA target {bad:?}; {ARCHITECTURE} knows {BLOCK_TARGETS:?}"
            ));
        }
        let mut sites = Vec::new();
        for layer in 0..self.n_layer {
            for target in BLOCK_TARGETS
                .iter()
                .filter(|t| targets.iter().any(|x| x == *t))
            {
                let (out, inp) = self.projection_shape(target).expect("known target");
                sites.push(Site {
                    name: format!("blk.{layer}.{target}"),
                    out,
                    inp,
                });
            }
        }
        Ok(sites)
    }
}

/// What building the encoder needs besides the GGUF file.
pub struct BertOptions<'a> {
    /// Dimensions the skill expects.
    pub expected: &'a BertDims,
    /// How frozen weights are held.
    pub weights: WeightMode,
    /// Which sites carry adapters.
    pub lora: &'a LoraSpec,
    /// The adapter factors by name (`Var`-backed ones are trained).
    pub factors: &'a NamedTensors,
    /// Where the computation runs.
    pub device: &'a Device,
}

/// A LayerNorm's scale and shift.
#[derive(Debug)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// A projection with its bias.
#[derive(Debug)]
struct Linear {
    linear: LoraLinear,
    bias: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.linear.forward(x)?.broadcast_add(&self.bias)
    }
}

/// One encoder block.
#[derive(Debug)]
struct Block {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    ffn_norm: LayerNorm,
}

/// The encoder, ready to embed token ids.
#[derive(Debug)]
pub struct BertEncoder {
    dims: BertDims,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embed_norm: LayerNorm,
    blocks: Vec<Block>,
}

impl BertEncoder {
    /// Builds the encoder from a GGUF base, checking its metadata and every tensor's shape
    /// against `opts.expected`.
    pub fn from_gguf(g: &mut Gguf, opts: &BertOptions<'_>) -> Result<Self> {
        let dims = BertDims::from_gguf(g)?;
        if &dims != opts.expected {
            return Err(g.error(format!(
                "dimensions {dims:?} disagree with the skill's {:?}",
                opts.expected
            )));
        }
        let eps = f64::from(g.get_f32("bert.attention.layer_norm_epsilon")?);
        let device = opts.device;
        let mut dense = |name: &str, shape: &[usize]| -> Result<Tensor> {
            Ok(g.tensor(name, shape, device)?.dequantize(device)?)
        };
        let word = dense("token_embd.weight", &[dims.n_vocab, dims.n_embd])?;
        let position = dense("position_embd.weight", &[dims.n_ctx, dims.n_embd])?;
        let token_type = dense("token_types.weight", &[2, dims.n_embd])?.narrow(0, 0, 1)?;
        let mut norm = |name: &str| -> Result<LayerNorm> {
            Ok(LayerNorm {
                weight: dense(&format!("{name}.weight"), &[dims.n_embd])?,
                bias: dense(&format!("{name}.bias"), &[dims.n_embd])?,
                eps,
            })
        };
        let embed_norm = norm("token_embd_norm")?;
        let mut blocks = Vec::with_capacity(dims.n_layer);
        for layer in 0..dims.n_layer {
            let mut linear = |target: &str| -> Result<Linear> {
                let site = format!("blk.{layer}.{target}");
                let (out, inp) = dims.projection_shape(target).expect("own target");
                let weight = g.tensor(&format!("{site}.weight"), &[out, inp], device)?;
                let bias = g.tensor(&format!("{site}.bias"), &[out], device)?;
                Ok(Linear {
                    linear: LoraLinear::new(
                        shared::frozen(weight, opts.weights, device)?,
                        shared::lora_pair(opts.lora, opts.factors, &site, target)?,
                    ),
                    bias: bias.dequantize(device)?,
                })
            };
            let (q, k, v, out) = (
                linear("attn_q")?,
                linear("attn_k")?,
                linear("attn_v")?,
                linear("attn_output")?,
            );
            let (up, down) = (linear("ffn_up")?, linear("ffn_down")?);
            let mut norm = |name: &str| -> Result<LayerNorm> {
                let n = format!("blk.{layer}.{name}");
                Ok(LayerNorm {
                    weight: g
                        .tensor(&format!("{n}.weight"), &[dims.n_embd], device)?
                        .dequantize(device)?,
                    bias: g
                        .tensor(&format!("{n}.bias"), &[dims.n_embd], device)?
                        .dequantize(device)?,
                    eps,
                })
            };
            blocks.push(Block {
                q,
                k,
                v,
                out,
                attn_norm: norm("attn_output_norm")?,
                up,
                down,
                ffn_norm: norm("layer_output_norm")?,
            });
        }
        Ok(Self {
            dims,
            word,
            position,
            token_type,
            embed_norm,
            blocks,
        })
    }

    /// The encoder's dimensions.
    pub fn dims(&self) -> &BertDims {
        &self.dims
    }

    /// Last hidden states (batch, seq, n_embd) of token ids `ids` (batch, seq), where `mask`
    /// (batch, seq; 1 for a token, 0 for padding) says which positions attention may read.
    pub fn hidden(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        if seq > self.dims.n_ctx {
            return Err(Error::Tensor(candle_core::Error::Msg(format!(
                "{seq} tokens, more than the encoder's {} positions",
                self.dims.n_ctx
            ))));
        }
        let words = self.word.index_select(&ids.flatten_all()?, 0)?.reshape((
            batch,
            seq,
            self.dims.n_embd,
        ))?;
        let positions = self.position.narrow(0, 0, seq)?;
        let mut x = self.embed_norm.forward(
            &words
                .broadcast_add(&positions)?
                .broadcast_add(&self.token_type)?,
        )?;
        // (batch, 1, 1, seq): 0 where a key is a token, MASKED where it is padding.
        let key_bias =
            ((mask.to_dtype(DType::F32)? - 1.0)? * -MASKED)?.reshape((batch, 1, 1, seq))?;
        let (heads, head_dim) = (self.dims.n_head, self.dims.n_embd / self.dims.n_head);
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, seq, heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        for block in &self.blocks {
            let q = split(block.q.forward(&x)?)?;
            let k = split(block.k.forward(&x)?)?;
            let v = split(block.v.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?;
            let weights = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&key_bias)?)?;
            let context =
                weights
                    .matmul(&v)?
                    .transpose(1, 2)?
                    .reshape((batch, seq, self.dims.n_embd))?;
            x = block
                .attn_norm
                .forward(&(x + block.out.forward(&context)?)?)?;
            let inner = block.up.forward(&x)?.gelu_erf()?;
            x = block
                .ffn_norm
                .forward(&(x + block.down.forward(&inner)?)?)?;
        }
        Ok(x)
    }

    /// Unit-length sentence embeddings (batch, n_embd): the mean of the last hidden states over
    /// each text's tokens (`mask` 1), divided by its L2 norm.
    pub fn embed(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let hidden = self.hidden(ids, mask)?;
        let weights = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&weights)?.sum(1)?;
        let counts = weights.sum(1)?.clamp(1.0, f64::INFINITY)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12, f64::INFINITY)?;
        Ok(mean.broadcast_div(&norm)?)
    }
}
