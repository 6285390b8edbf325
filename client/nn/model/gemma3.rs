//! The Gemma 3 text decoder over a frozen GGUF base (`general.architecture = "gemma3"`), with
//! LoRA on any of its projections. Training only: logits for every position, no KV cache.
//!
//! As Gemma 3 defines it: token embeddings scaled by √width; per block, RMSNorm before and
//! after attention and before and after the MLP; RMSNorm on each query and key head; rotary
//! embedding on halves of the head ("neox"); grouped-query attention scaled by 1/√head_dim; every
//! sixth block attends globally (rotary base `rope.freq_base`), the others within a sliding
//! window (base 10,000); a GELU (tanh) gated MLP; the output head tied to the embedding. GGUF
//! files store Gemma's norm weights with its `1 +` already added, so norms are plain RMSNorm.
//! Rotary tables are sized to the longest sequence trained on, not the model's 32k context.

use crate::error::Result;
use crate::format::adapter::{LoraSpec, Site};
pub use crate::format::arch::Gemma3Dims;
use crate::format::gguf::Gguf;
use crate::format::tensors::NamedTensors;
use crate::nn::lora::LoraLinear;
use crate::nn::model::decoder::{head_nll_rows, Decoder, Incremental, WeightMode};
use crate::nn::model::gated_gelu::gated_gelu;
use crate::nn::model::kv_cache::KvCache;
use crate::nn::model::llama::{BLOCK_TARGETS, HEAD_TARGET};
use crate::nn::model::rope::Rope;
use crate::nn::model::shared;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use std::sync::Arc;

/// Blocks per attention period: blocks `5, 11, 17, …` attend globally.
const GLOBAL_EVERY: usize = 6;
/// Rotary base of the sliding-window blocks.
const LOCAL_ROPE_BASE: f32 = 10_000.0;

/// Gemma 3's configuration, from the GGUF's `gemma3.*` metadata: the dimensions a skill pins,
/// and what else the decoder needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemma3Config {
    /// The dimensions.
    pub dims: Gemma3Dims,
    /// Positions a sliding-window block looks back over.
    pub sliding_window: usize,
    /// Rotary base of the global blocks.
    pub rope_base: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
}

impl Gemma3Config {
    /// Reads the configuration from a GGUF.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let arch = g.get_str("general.architecture")?;
        if arch != "gemma3" {
            return Err(g.error(format!(
                "general.architecture is {arch:?}, expected \"gemma3\""
            )));
        }
        let dims = Gemma3Dims {
            n_layer: g.get_usize("gemma3.block_count")?,
            n_embd: g.get_usize("gemma3.embedding_length")?,
            n_head: g.get_usize("gemma3.attention.head_count")?,
            n_head_kv: g.get_usize("gemma3.attention.head_count_kv")?,
            head_dim: g.get_usize("gemma3.attention.key_length")?,
            n_ff: g.get_usize("gemma3.feed_forward_length")?,
            n_vocab: g.get_strings("tokenizer.ggml.tokens")?.len(),
        };
        dims.check()
            .map_err(|m| g.error(format!("dimensions: {m}")))?;
        Ok(Self {
            dims,
            sliding_window: g.get_usize("gemma3.attention.sliding_window")?,
            rope_base: g.get_f32_or("gemma3.rope.freq_base", 1_000_000.0)?,
            rms_eps: g.get_f32("gemma3.attention.layer_norm_rms_epsilon")?,
        })
    }

    /// Whether block `layer` attends over the whole sequence (else within the sliding window).
    pub fn is_global(layer: usize) -> bool {
        (layer + 1).is_multiple_of(GLOBAL_EVERY)
    }
}

impl Gemma3Dims {
    /// (out, in) of a projection, by GGUF name (the same names as llama's).
    pub fn projection_shape(&self, target: &str) -> Option<(usize, usize)> {
        shared::projection_shape(
            &shared::Widths {
                n_embd: self.n_embd,
                q: self.n_head * self.head_dim,
                kv: self.n_head_kv * self.head_dim,
                n_ff: self.n_ff,
                n_vocab: self.n_vocab,
            },
            target,
        )
    }

    /// Every adapted site for `targets`, in model order; an unknown target is an error message.
    pub fn sites(&self, targets: &[String]) -> std::result::Result<Vec<Site>, String> {
        shared::sites(
            "gemma3",
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
    q_norm: Tensor,
    k_norm: Tensor,
    o: LoraLinear,
    post_attn_norm: Tensor,
    ffn_norm: Tensor,
    gate: LoraLinear,
    up: LoraLinear,
    down: LoraLinear,
    post_ffn_norm: Tensor,
    global: bool,
}

/// The decoder, ready to compute training logits.
#[derive(Debug)]
pub struct Gemma3 {
    cfg: Gemma3Config,
    embedding: Arc<QTensor>,
    blocks: Vec<Block>,
    output_norm: Tensor,
    head: LoraLinear,
    rope_global: Rope,
    rope_local: Rope,
}

/// What the loader needs besides the GGUF file.
pub struct Gemma3Options<'a> {
    /// Dimensions the skill expects, if it pins them.
    pub expected: Option<&'a Gemma3Dims>,
    /// How frozen weights are held.
    pub weights: WeightMode,
    /// Which projections carry adapters.
    pub lora: &'a LoraSpec,
    /// The adapter factors by name.
    pub factors: &'a NamedTensors,
    /// Longest sequence the model will see.
    pub max_seq_len: usize,
    /// Where the computation runs.
    pub device: &'a Device,
}

impl Gemma3 {
    /// Builds the decoder from a Gemma 3 GGUF base, checking every tensor's shape.
    pub fn from_gguf(g: &mut Gguf, opts: &Gemma3Options<'_>) -> Result<Self> {
        let cfg = Gemma3Config::from_gguf(g)?;
        if let Some(expected) = opts.expected {
            if &cfg.dims != expected {
                return Err(g.error(format!(
                    "dimensions {:?} disagree with the skill's {expected:?}",
                    cfg.dims
                )));
            }
        }
        let dims = cfg.dims.clone();
        let device = opts.device;
        let frozen = |w: QTensor| shared::frozen(w, opts.weights, device);
        let lora =
            |site: &str, target: &str| shared::lora_pair(opts.lora, opts.factors, site, target);
        let mut blocks = Vec::with_capacity(dims.n_layer);
        for layer in 0..dims.n_layer {
            let mut norm = |name: &str, n: usize| -> Result<Tensor> {
                Ok(
                    g.tensor(&format!("blk.{layer}.{name}.weight"), &[n], device)?
                        .dequantize(device)?,
                )
            };
            let (attn_norm, q_norm, k_norm, post_attn_norm, ffn_norm, post_ffn_norm) = (
                norm("attn_norm", dims.n_embd)?,
                norm("attn_q_norm", dims.head_dim)?,
                norm("attn_k_norm", dims.head_dim)?,
                norm("post_attention_norm", dims.n_embd)?,
                norm("ffn_norm", dims.n_embd)?,
                norm("post_ffw_norm", dims.n_embd)?,
            );
            let mut linear = |target: &str| -> Result<LoraLinear> {
                let (out, inp) = dims.projection_shape(target).expect("known target");
                let site = format!("blk.{layer}.{target}");
                let w = g.tensor(&format!("{site}.weight"), &[out, inp], device)?;
                Ok(LoraLinear::new(frozen(w)?, lora(&site, target)?))
            };
            blocks.push(Block {
                attn_norm,
                q: linear("attn_q")?,
                k: linear("attn_k")?,
                v: linear("attn_v")?,
                q_norm,
                k_norm,
                o: linear("attn_output")?,
                post_attn_norm,
                ffn_norm,
                gate: linear("ffn_gate")?,
                up: linear("ffn_up")?,
                down: linear("ffn_down")?,
                post_ffn_norm,
                global: Gemma3Config::is_global(layer),
            });
        }
        let table = g.tensor("token_embd.weight", &[dims.n_vocab, dims.n_embd], device)?;
        // The head is the embedding, tied: one quantized table serves both when the head keeps
        // it quantized (168 MB for Gemma 3 270M), else the head holds its own f32 copy.
        let head = LoraLinear::new(frozen(table)?, lora("output", "output")?);
        let embedding = match head.frozen().quantized_weight() {
            Some(shared) => shared.clone(),
            None => {
                Arc::new(g.tensor("token_embd.weight", &[dims.n_vocab, dims.n_embd], device)?)
            }
        };
        let output_norm = g
            .tensor("output_norm.weight", &[dims.n_embd], device)?
            .dequantize(device)?;
        let rope_global = Rope::new(dims.head_dim, opts.max_seq_len, cfg.rope_base, device)?;
        let rope_local = Rope::new(dims.head_dim, opts.max_seq_len, LOCAL_ROPE_BASE, device)?;
        Ok(Self {
            cfg,
            embedding,
            blocks,
            output_norm,
            head,
            rope_global,
            rope_local,
        })
    }

    /// The model's dimensions.
    pub fn config(&self) -> &Gemma3Config {
        &self.cfg
    }

    /// Logits (batch, seq, vocab) for token ids (batch, seq).
    pub fn forward(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        Decoder::forward(self, tokens)
    }
}

impl Decoder for Gemma3 {
    fn hidden(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        self.run(tokens, None)
    }

    fn head(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        self.head.forward(hidden)
    }

    fn nll_rows(&self, hidden: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
        head_nll_rows(&self.head, hidden, targets)
    }

    fn incremental(&self) -> Option<&dyn Incremental> {
        Some(self)
    }
}

impl Incremental for Gemma3 {
    fn prefill(&self, tokens: &Tensor, lens: &[usize]) -> candle_core::Result<(Tensor, KvCache)> {
        let mut layers = Vec::with_capacity(self.blocks.len());
        let hidden = self.run(tokens, Some(&mut layers))?;
        Ok((hidden, KvCache::new(layers, lens.to_vec(), tokens.dim(1)?)))
    }

    fn extend(&self, tokens: &Tensor, cache: &mut KvCache) -> candle_core::Result<Tensor> {
        let device = tokens.device();
        let positions = cache.next_positions();
        let global_mask = cache.next_mask(usize::MAX, device)?;
        let local_mask = cache.next_mask(self.cfg.sliding_window, device)?;
        let mut x = self.embed(tokens)?;
        for (layer, blk) in self.blocks.iter().enumerate() {
            let (mask, rope) = if blk.global {
                (&global_mask, &self.rope_global)
            } else {
                (&local_mask, &self.rope_local)
            };
            x = self.block_forward(blk, &x, |h| {
                let (q, k, v) = self.qkv(blk, h, |y| rope.apply_halves_at(y, &positions))?;
                let (k, v) = cache.extend(layer, &k, &v)?;
                blk.o.forward(&shared::attend_additive(&q, &k, &v, mask)?)
            })?;
        }
        cache.advance();
        self.norm(&x, &self.output_norm)
    }
}

impl Gemma3 {
    fn norm(&self, x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
        super::rms_norm::rms_norm(x, weight, self.cfg.rms_eps)
    }

    /// The scaled token embeddings of `tokens`.
    fn embed(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        self.embedding.embedding(tokens)? * (self.cfg.dims.n_embd as f64).sqrt()
    }

    /// Final-normed hidden states of `tokens`; every layer's keys and values go to `cache`
    /// when given.
    fn run(
        &self,
        tokens: &Tensor,
        mut cache: Option<&mut Vec<(Tensor, Tensor)>>,
    ) -> candle_core::Result<Tensor> {
        let (_, t) = tokens.dims2()?;
        let device = tokens.device();
        let mut x = self.embed(tokens)?;
        let global_mask = shared::mask(t, t, device)?;
        let local_mask = shared::mask(t, self.cfg.sliding_window, device)?;
        for blk in &self.blocks {
            let (mask, rope) = if blk.global {
                (&global_mask, &self.rope_global)
            } else {
                (&local_mask, &self.rope_local)
            };
            x = self.block_forward(blk, &x, |h| {
                let (q, k, v) = self.qkv(blk, h, |y| rope.apply_halves(y))?;
                let out = blk.o.forward(&shared::attend(&q, &k, &v, mask)?)?;
                if let Some(layers) = cache.as_deref_mut() {
                    layers.push((k, v));
                }
                Ok(out)
            })?;
        }
        self.norm(&x, &self.output_norm)
    }

    /// A block on `x` whose attention, given the normed input, is `attention`.
    fn block_forward(
        &self,
        blk: &Block,
        x: &Tensor,
        attention: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        let h = self.norm(x, &blk.attn_norm)?;
        let attn = self.norm(&attention(&h)?, &blk.post_attn_norm)?;
        let x = (x + attn)?;
        let h = self.norm(&x, &blk.ffn_norm)?;
        let mlp = blk
            .down
            .forward(&gated_gelu(&blk.gate.forward(&h)?, &blk.up.forward(&h)?)?)?;
        x + self.norm(&mlp, &blk.post_ffn_norm)?
    }

    /// Queries, keys and values (batch, heads, seq, head_dim) of the normed input `x`, the
    /// queries and keys normed and rotated by `rotate`.
    fn qkv(
        &self,
        blk: &Block,
        x: &Tensor,
        rotate: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let (nh, nkv, hd) = (
            self.cfg.dims.n_head,
            self.cfg.dims.n_head_kv,
            self.cfg.dims.head_dim,
        );
        let heads = |y: Tensor, n: usize| y.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous();
        let q = rotate(&self.norm(&heads(blk.q.forward(x)?, nh)?, &blk.q_norm)?)?;
        let k = rotate(&self.norm(&heads(blk.k.forward(x)?, nkv)?, &blk.k_norm)?)?;
        let v = heads(blk.v.forward(x)?, nkv)?;
        Ok((q, k, v))
    }
}
