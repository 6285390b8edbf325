//! The tiny test base: a two-block llama decoder with a byte vocabulary, randomly initialised
//! from a seed and written as GGUF with quantized weights (about 0.84 MB in Q8_0, 0.45 MB in Q4_K).
//!
//! Tests and the local federation use it so that nothing is ever downloaded. The bytes depend
//! only on the seed and the quantization, so a manifest can pin its sha256.

use crate::error::{Error, Result};
use crate::format::files;
use crate::nn::model::llama::LlamaConfig;
use crate::text::tokenizer::ByteTokenizer;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Cursor;
use std::path::Path;

/// The tiny model's dimensions. Widths are multiples of 256 so that Q4_K and the fast kernels fit.
pub fn tiny_config() -> LlamaConfig {
    LlamaConfig {
        n_layer: 2,
        n_embd: 256,
        n_head: 4,
        n_head_kv: 1,
        n_ff: 256,
        n_vocab: ByteTokenizer::VOCAB_SIZE,
    }
}

/// Quantization of the tiny model's matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TinyQuant {
    /// 8-bit blocks of 32.
    #[value(name = "q8_0")]
    Q8_0,
    /// 4-bit k-quant super-blocks of 256.
    #[value(name = "q4k")]
    Q4K,
}

impl TinyQuant {
    fn dtype(self) -> GgmlDType {
        match self {
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q4K => GgmlDType::Q4K,
        }
    }
}

/// Writes the tiny model for `seed` and `quant` to `out` (atomically) and returns its sha256.
pub fn write_tiny_model(out: &Path, seed: u64, quant: TinyQuant) -> Result<String> {
    let bytes = tiny_model_bytes(seed, quant)?;
    files::write_atomic(out, &bytes)?;
    Ok(files::sha256_hex(&bytes))
}

/// The tiny model's GGUF bytes.
pub fn tiny_model_bytes(seed: u64, quant: TinyQuant) -> Result<Vec<u8>> {
    let cfg = tiny_config();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dev = Device::Cpu;
    let hd = cfg.head_dim();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut uniform = |rows: usize, cols: usize, bound: f32| -> Result<Tensor> {
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Ok(Tensor::from_vec(v, (rows, cols), &dev)?)
    };
    let quantize = |t: &Tensor| QTensor::quantize(t, quant.dtype());
    // Small embeddings (tied with the output head) keep the first logits near uniform.
    tensors.push((
        "token_embd.weight".into(),
        quantize(&uniform(cfg.n_vocab, cfg.n_embd, 0.05)?)?,
    ));
    let ones = |n: usize| {
        QTensor::quantize(
            &Tensor::ones(n, candle_core::DType::F32, &dev)?,
            GgmlDType::F32,
        )
    };
    for l in 0..cfg.n_layer {
        let shapes = [
            ("attn_q", cfg.n_head * hd, cfg.n_embd),
            ("attn_k", cfg.n_head_kv * hd, cfg.n_embd),
            ("attn_v", cfg.n_head_kv * hd, cfg.n_embd),
            ("attn_output", cfg.n_embd, cfg.n_head * hd),
            ("ffn_gate", cfg.n_ff, cfg.n_embd),
            ("ffn_up", cfg.n_ff, cfg.n_embd),
            ("ffn_down", cfg.n_embd, cfg.n_ff),
        ];
        tensors.push((format!("blk.{l}.attn_norm.weight"), ones(cfg.n_embd)?));
        tensors.push((format!("blk.{l}.ffn_norm.weight"), ones(cfg.n_embd)?));
        for (name, out, inp) in shapes {
            let w = uniform(out, inp, 1.0 / (inp as f32).sqrt())?;
            tensors.push((format!("blk.{l}.{name}.weight"), quantize(&w)?));
        }
    }
    tensors.push(("output_norm.weight".into(), ones(cfg.n_embd)?));

    use gguf_file::Value as V;
    let tok = ByteTokenizer;
    let metadata: Vec<(&str, V)> = vec![
        ("general.architecture", V::String("llama".into())),
        ("general.name", V::String(format!("aginet-tiny-seed{seed}"))),
        ("llama.block_count", V::U32(cfg.n_layer as u32)),
        ("llama.context_length", V::U32(512)),
        ("llama.embedding_length", V::U32(cfg.n_embd as u32)),
        ("llama.feed_forward_length", V::U32(cfg.n_ff as u32)),
        ("llama.attention.head_count", V::U32(cfg.n_head as u32)),
        (
            "llama.attention.head_count_kv",
            V::U32(cfg.n_head_kv as u32),
        ),
        ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
        ("llama.rope.freq_base", V::F32(10_000.0)),
        ("llama.rope.dimension_count", V::U32(hd as u32)),
        ("llama.vocab_size", V::U32(cfg.n_vocab as u32)),
        (
            "tokenizer.ggml.model",
            V::String(ByteTokenizer::MODEL_NAME.into()),
        ),
        (
            "tokenizer.ggml.tokens",
            V::Array(tok.token_strings().into_iter().map(V::String).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", V::U32(ByteTokenizer::BOS)),
        ("tokenizer.ggml.eos_token_id", V::U32(ByteTokenizer::EOS)),
        (
            "tokenizer.ggml.padding_token_id",
            V::U32(ByteTokenizer::PAD),
        ),
    ];
    let meta_refs: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut cursor = Cursor::new(Vec::new());
    gguf_file::write(&mut cursor, &meta_refs, &tensor_refs)
        .map_err(|e| Error::model("<tiny model>", format!("writing GGUF: {e}")))?;
    Ok(cursor.into_inner())
}
