//! `cut-base --in GGUF --out GGUF`: a transformer base cut down to a few layers, narrow widths
//! and the first tokens of its vocabulary, keeping its family, metadata, tokenizer kind and
//! tensor names, so that the app's loader walks it to the end. What it is for: seeds for the
//! fuzzers (`fuzz/seeds.sh`), whose inputs are at most 1 MiB, from bases of hundreds of MB.
//!
//! The cut reads the family's widths from `<arch>.*` keys (`embedding_length`,
//! `feed_forward_length`, `attention.head_count[_kv]`, `attention.key_length`) and the
//! vocabulary from `tokenizer.ggml.tokens`, maps each original size to its new one, and slices
//! every kept tensor to the new sizes along each dimension whose size is in the map (the first
//! rows and columns of the real weights; only the rows kept are read and dequantized). Tensors
//! of layers past the new count are dropped. Block-quantized tensors are written as Q8_0 (the
//! new widths are multiples of 32), the others in F32. The feed-forward keeps its ratio to the
//! width; a head is `width / heads` wide. Two roles with the same original size
//! but different new sizes are refused: no slicing could serve both.

use anyhow::{bail, ensure, Context, Result};
use candle_core::quantized::{ggml_file, gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The sizes of the cut base.
#[derive(Clone, Copy, Debug)]
pub struct Cut {
    /// Transformer blocks kept (the first ones).
    pub layers: usize,
    /// Width of the residual stream; the feed-forward keeps its ratio to it (rounded down to
    /// a multiple of 32).
    pub width: usize,
    /// Attention heads (key/value heads: at most this); each head is `width / heads` wide.
    pub heads: usize,
    /// Tokens kept (the first ones); every special token's id must be below it.
    pub vocab: usize,
}

/// What a cut kept.
#[derive(Debug)]
pub struct CutDone {
    /// The family (`general.architecture`).
    pub arch: String,
    /// Tensors written.
    pub tensors: usize,
    /// Metadata keys dropped because the cut makes them wrong (a whole tokenizer's JSON).
    pub dropped: Vec<String>,
}

/// Metadata keys that describe the whole vocabulary in a form the cut cannot shorten.
const DROPPED_KEYS: [&str; 1] = [aginet::text::HF_JSON_KEY];

/// Cuts the base at `input` down to `cut` and writes it to `output` (atomically).
pub fn cut_base(input: &Path, output: &Path, cut: Cut) -> Result<CutDone> {
    let name = input.display();
    ensure!(
        cut.layers >= 1 && cut.heads >= 1 && cut.vocab >= 1,
        "cut-base: --layers, --heads and --vocab must be at least 1"
    );
    ensure!(
        cut.width.is_multiple_of(cut.heads) && (cut.width / cut.heads).is_multiple_of(32),
        "cut-base: --width {} over --heads {} must give heads a multiple of 32 wide (Q8_0 rows)",
        cut.width,
        cut.heads
    );
    let mut file = std::fs::File::open(input).with_context(|| format!("{name}"))?;
    let content =
        gguf_file::Content::read(&mut file).with_context(|| format!("{name}: malformed GGUF"))?;
    let meta = &content.metadata;
    let arch = match meta.get("general.architecture") {
        Some(gguf_file::Value::String(a)) => a.clone(),
        _ => bail!("{name}: no general.architecture string"),
    };
    let size = |key: &str| -> Result<Option<usize>> {
        match meta.get(&format!("{arch}.{key}")) {
            None => Ok(None),
            Some(v) => Ok(Some(
                v.to_u64()
                    .with_context(|| format!("{name}: {arch}.{key} is not an unsigned integer"))?
                    as usize,
            )),
        }
    };
    let required = |key: &str| -> Result<usize> {
        size(key)?.with_context(|| {
            format!("{name}: no {arch}.{key}: not a transformer base this tool can cut")
        })
    };
    let width = required("embedding_length")?;
    let ffn = required("feed_forward_length")?;
    let heads = required("attention.head_count")?;
    let heads_kv = size("attention.head_count_kv")?.unwrap_or(heads);
    let key_len = size("attention.key_length")?;
    let layers = required("block_count")?;
    let tokens = match meta.get("tokenizer.ggml.tokens") {
        Some(gguf_file::Value::Array(t)) => t.len(),
        _ => bail!("{name}: no tokenizer.ggml.tokens array"),
    };
    ensure!(
        heads > 0 && width.is_multiple_of(heads),
        "{name}: {arch}.embedding_length {width} is not a multiple of the {heads} heads"
    );
    let head = key_len.unwrap_or(width / heads);

    let new_heads = cut.heads.min(heads);
    let new_kv = cut.heads.min(heads_kv).max(1);
    ensure!(
        new_heads.is_multiple_of(new_kv),
        "{name}: {new_heads} heads cannot share {new_kv} key/value heads"
    );
    let new_head = cut.width / cut.heads;
    let new_width = cut.width;
    let new_ffn = ((new_width * ffn / width) / 32 * 32).max(32);
    let new_vocab = cut.vocab.min(tokens);
    let new_layers = cut.layers.min(layers);

    // Each original size and the size it becomes; a clash means no slicing serves both.
    let mut sizes: BTreeMap<usize, (usize, &str)> = BTreeMap::new();
    for (from, to, role) in [
        (width, new_width, "embedding_length"),
        (ffn, new_ffn, "feed_forward_length"),
        (heads * head, new_heads * new_head, "the query width"),
        (heads_kv * head, new_kv * new_head, "the key/value width"),
        (head, new_head, "the head width"),
        (tokens, new_vocab, "the vocabulary"),
    ] {
        if let Some((other, other_role)) = sizes.insert(from, (to, role)) {
            ensure!(
                other == to,
                "{name}: {role} and {other_role} are both {from} wide but would become {to} and {other}"
            );
        }
    }

    let mut metadata: Vec<(String, gguf_file::Value)> = Vec::new();
    let mut dropped = Vec::new();
    let kept_tokens = kept_vocabulary(meta, new_vocab);
    for (key, value) in meta {
        if DROPPED_KEYS.contains(&key.as_str()) {
            dropped.push(key.clone());
            continue;
        }
        let value = cut_value(
            &arch,
            key,
            value,
            &CutSizes {
                layers: new_layers,
                width: new_width,
                ffn: new_ffn,
                heads: new_heads,
                heads_kv: new_kv,
                head: new_head,
                vocab: new_vocab,
                tokens: &kept_tokens,
            },
        )
        .with_context(|| format!("{name}: {key}"))?;
        metadata.push((key.clone(), value));
    }
    metadata.sort_by(|a, b| a.0.cmp(&b.0));

    let mut infos: Vec<(&String, &gguf_file::TensorInfo)> = content.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, info)| info.offset);
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for (tensor, info) in infos {
        if layer_of(tensor).is_some_and(|l| l >= new_layers) {
            continue;
        }
        let cut_tensor = cut_tensor(&mut file, content.tensor_data_offset, info, &sizes)
            .with_context(|| format!("{name}: tensor {tensor}"))?;
        tensors.push((tensor.clone(), cut_tensor));
    }

    let meta_refs: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut bytes = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut bytes, &meta_refs, &refs)
        .with_context(|| format!("writing {}", output.display()))?;
    aginet::format::files::write_atomic(output, &bytes.into_inner())
        .with_context(|| format!("{}", output.display()))?;
    Ok(CutDone {
        arch,
        tensors: tensors.len(),
        dropped,
    })
}

/// The new sizes a metadata value may have to follow.
struct CutSizes<'a> {
    layers: usize,
    width: usize,
    ffn: usize,
    heads: usize,
    heads_kv: usize,
    head: usize,
    vocab: usize,
    tokens: &'a HashSet<String>,
}

/// The value of `key` in the cut base.
fn cut_value(
    arch: &str,
    key: &str,
    value: &gguf_file::Value,
    s: &CutSizes,
) -> Result<gguf_file::Value> {
    use gguf_file::Value as V;
    let number = |n: usize| match value {
        V::U64(_) => V::U64(n as u64),
        _ => V::U32(n as u32),
    };
    if let Some(field) = key.strip_prefix(&format!("{arch}.")) {
        return Ok(match field {
            "block_count" => number(s.layers),
            "embedding_length" => number(s.width),
            "feed_forward_length" => number(s.ffn),
            "attention.head_count" => number(s.heads),
            "attention.head_count_kv" => number(s.heads_kv),
            "attention.key_length" | "attention.value_length" | "rope.dimension_count" => {
                number(s.head)
            }
            "vocab_size" => number(s.vocab),
            _ => value.clone(),
        });
    }
    Ok(match (key, value) {
        (
            "tokenizer.ggml.tokens" | "tokenizer.ggml.scores" | "tokenizer.ggml.token_type",
            V::Array(items),
        ) => V::Array(items[..s.vocab.min(items.len())].to_vec()),
        // A merge stays when both its parts and what it makes are kept tokens.
        ("tokenizer.ggml.merges", V::Array(items)) => V::Array(
            items
                .iter()
                .filter(|m| match m {
                    V::String(m) => m.split_once(' ').is_some_and(|(a, b)| {
                        s.tokens.contains(a)
                            && s.tokens.contains(b)
                            && s.tokens.contains(&format!("{a}{b}"))
                    }),
                    _ => false,
                })
                .cloned()
                .collect(),
        ),
        (k, v) if k.starts_with("tokenizer.ggml.") && k.ends_with("_token_id") => {
            let id = v.to_u64().context("not an unsigned integer")? as usize;
            ensure!(
                id < s.vocab,
                "token id {id} is past the {} tokens kept: raise --vocab",
                s.vocab
            );
            v.clone()
        }
        _ => value.clone(),
    })
}

/// The first `n` tokens' strings.
fn kept_vocabulary(
    meta: &std::collections::HashMap<String, gguf_file::Value>,
    n: usize,
) -> HashSet<String> {
    match meta.get("tokenizer.ggml.tokens") {
        Some(gguf_file::Value::Array(items)) => items
            .iter()
            .take(n)
            .filter_map(|t| match t {
                gguf_file::Value::String(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => HashSet::new(),
    }
}

/// The block number of a `blk.N.*` tensor.
fn layer_of(tensor: &str) -> Option<usize> {
    tensor.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// One tensor sliced to the new sizes: only its first rows are read.
fn cut_tensor<R: Read + Seek>(
    file: &mut R,
    data_offset: u64,
    info: &gguf_file::TensorInfo,
    sizes: &BTreeMap<usize, (usize, &str)>,
) -> Result<QTensor> {
    // candle's order: the outermost dimension first, the row (GGUF's ne0) last.
    let dims = info.shape.dims().to_vec();
    let new_dims: Vec<usize> = dims
        .iter()
        .map(|d| sizes.get(d).map_or(*d, |(to, _)| *to).min(*d))
        .collect();
    let row = *dims.last().context("a tensor without dimensions")?;
    let (block, block_bytes) = (info.ggml_dtype.block_size(), info.ggml_dtype.type_size());
    ensure!(
        row % block == 0,
        "rows of {row} are not whole {:?} blocks",
        info.ggml_dtype
    );
    let row_bytes = row / block * block_bytes;
    // What is read: for a matrix (or more), the outermost dimension's kept extent, all of the
    // others (a middle dimension is sliced after dequantizing); a vector whole.
    let mut read_dims = dims.clone();
    if dims.len() >= 2 {
        read_dims[0] = new_dims[0];
    }
    let read_rows: usize = read_dims[..read_dims.len() - 1].iter().product();
    let mut raw = vec![0u8; read_rows * row_bytes];
    file.seek(SeekFrom::Start(data_offset + info.offset))?;
    file.read_exact(&mut raw).context("reading its data")?;
    let read = ggml_file::qtensor_from_ggml(info.ggml_dtype, &raw, read_dims, &Device::Cpu)?;
    let mut values: Tensor = read.dequantize(&Device::Cpu)?;
    for (axis, (&have, &want)) in dims.iter().zip(&new_dims).enumerate() {
        if want < have && !(axis == 0 && dims.len() >= 2) {
            values = values.narrow(axis, 0, want)?;
        }
    }
    // A fresh tensor of exactly the kept values: quantizing reads the storage, not the view.
    let values = Tensor::from_vec(
        values.flatten_all()?.to_vec1::<f32>()?,
        new_dims.clone(),
        &Device::Cpu,
    )?;
    let dtype = match info.ggml_dtype {
        GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => GgmlDType::F32,
        _ if new_dims.last().is_some_and(|r| r.is_multiple_of(32)) => GgmlDType::Q8_0,
        _ => GgmlDType::F32,
    };
    Ok(QTensor::quantize(&values, dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aginet::format::adapter::LoraSpec;
    use aginet::format::config::Architecture;
    use aginet::format::gguf::Gguf;
    use aginet::format::tensors::NamedTensors;
    use aginet::nn::frozen::FrozenMode;
    use aginet::nn::model::tiny::{write_tiny_model, TinyQuant};
    use aginet::nn::model::{self, llama, ModelOptions, WeightMode};

    fn cut(layers: usize, width: usize, heads: usize, vocab: usize) -> Cut {
        Cut {
            layers,
            width,
            heads,
            vocab,
        }
    }

    #[test]
    fn the_tiny_base_cut_down_loads_with_the_new_sizes() {
        let dir = tempfile::tempdir().unwrap();
        for quant in [TinyQuant::Q8_0, TinyQuant::Q4K] {
            let (base, small) = (dir.path().join("base.gguf"), dir.path().join("small.gguf"));
            write_tiny_model(&base, 3, quant).unwrap();
            let done = cut_base(&base, &small, cut(1, 64, 2, 10_000)).unwrap();
            assert_eq!(done.arch, "llama");
            assert!(
                std::fs::metadata(&small).unwrap().len()
                    < std::fs::metadata(&base).unwrap().len() / 4
            );

            let mut g = Gguf::open(&small).unwrap();
            let cfg = llama::LlamaConfig::from_gguf(&g).unwrap();
            assert_eq!(
                (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_head_kv, cfg.n_ff),
                (1, 64, 2, 1, 64)
            );
            let (lora, factors, device) = (LoraSpec::none(), NamedTensors::new(), Device::Cpu);
            let opts = ModelOptions {
                weights: WeightMode::Quantized(FrozenMode::default()),
                lora: &lora,
                factors: &factors,
                max_seq_len: 16,
                device: &device,
            };
            model::load(&Architecture::Llama(cfg), &mut g, &opts).unwrap();
        }
    }

    #[test]
    fn the_first_rows_and_columns_of_the_real_weights_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (base, small) = (dir.path().join("base.gguf"), dir.path().join("small.gguf"));
        write_tiny_model(&base, 5, TinyQuant::Q8_0).unwrap();
        cut_base(&base, &small, cut(1, 64, 2, 10_000)).unwrap();
        let read = |path: &Path, name: &str| {
            let mut f = std::fs::File::open(path).unwrap();
            let c = gguf_file::Content::read(&mut f).unwrap();
            c.tensor(&mut f, name, &Device::Cpu)
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap()
        };
        // The key projection: one 64-wide key/value head over the 256-wide stream, now one
        // 32-wide head over 64.
        let whole = read(&base, "blk.0.attn_k.weight");
        let part = read(&small, "blk.0.attn_k.weight");
        assert_eq!((whole.dims(), part.dims()), (&[64, 256][..], &[32, 64][..]));
        let expected = whole.narrow(0, 0, 32).unwrap().narrow(1, 0, 64).unwrap();
        // Requantized from Q8_0 values to Q8_0: equal within a step of the new scale.
        let diff = (part - expected).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 0.02);
        // A layer past the cut is gone.
        let mut f = std::fs::File::open(&small).unwrap();
        let c = gguf_file::Content::read(&mut f).unwrap();
        assert!(!c.tensor_infos.keys().any(|n| n.starts_with("blk.1.")));
    }

    #[test]
    fn a_special_token_past_the_kept_vocabulary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (base, small) = (dir.path().join("base.gguf"), dir.path().join("small.gguf"));
        write_tiny_model(&base, 0, TinyQuant::Q8_0).unwrap();
        let err = cut_base(&base, &small, cut(1, 64, 2, 4)).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("raise --vocab") && text.contains("base.gguf"),
            "{text}"
        );
        assert!(!small.exists());
    }

    #[test]
    fn a_width_that_is_not_whole_q8_0_rows_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.gguf");
        write_tiny_model(&base, 0, TinyQuant::Q8_0).unwrap();
        let err = cut_base(&base, &dir.path().join("s.gguf"), cut(1, 48, 2, 300)).unwrap_err();
        assert!(format!("{err}").contains("multiple of 32"), "{err}");
    }
}
