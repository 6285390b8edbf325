//! The work unit's `data`: prompt/completion examples as JSON lines, and their batches.
//!
//! One JSON object per line: `{"prompt": "...", "completion": "..."}` plus an optional
//! `"split": "train" | "eval"`. The file may be zstd-compressed. When no line is marked `eval`,
//! the last tenth of the lines (at least one) is held out for evaluation. See
//! `docs/formats.md#data`.

use crate::error::{Error, Result};
use crate::text::tokenizer::Tokenizer;
use candle_core::{Device, Tensor};
use serde::Deserialize;
use std::path::Path;

/// The four bytes that open a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Largest decompressed data file a reader accepts: a work unit's mini data set and the
/// server's held-out sets are a few MiB at most; a zstd bomb stops here.
pub const MAX_DATA: usize = 256 << 20;

/// One training example.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// Text the model is given.
    pub prompt: String,
    /// Text the model should continue with; the loss covers only these tokens (and EOS).
    pub completion: String,
    /// `train` or `eval`; absent means train.
    #[serde(default)]
    pub split: Option<Split>,
}

/// Which split a line belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Used for training.
    Train,
    /// Used only to measure reward before and after.
    Eval,
}

/// A work unit's examples, tokenized.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// Training sequences.
    pub train: Vec<Sequence>,
    /// Evaluation sequences.
    pub eval: Vec<Sequence>,
}

/// A tokenized example: `BOS prompt completion EOS`, with the index where the completion starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Index in `ids` of the first completion token.
    pub completion_start: usize,
}

impl Dataset {
    /// Reads, tokenizes and splits a data file.
    pub fn read(path: &Path, tok: &dyn Tokenizer, max_seq_len: usize) -> Result<Self> {
        let bytes = read_maybe_compressed(path)?;
        Self::parse(&bytes, tok, max_seq_len).map_err(|m| Error::data(path, m))
    }

    /// Parses JSONL bytes; the error is a message for the caller to attach a path to.
    pub fn parse(
        bytes: &[u8],
        tok: &dyn Tokenizer,
        max_seq_len: usize,
    ) -> std::result::Result<Self, String> {
        let (train, eval) = split(parse_lines(bytes, tok, max_seq_len)?)?;
        Ok(Self { train, eval })
    }
}

/// Examples with their split markers as (train, eval): lines marked `eval` are the work unit's
/// own check; when none is, the last tenth (at least one) is. Every skill's data splits so.
pub fn split<T>(lines: Vec<(T, Option<Split>)>) -> std::result::Result<(Vec<T>, Vec<T>), String> {
    let mut train = Vec::new();
    let mut eval = Vec::new();
    for (example, split) in lines {
        match split {
            Some(Split::Eval) => eval.push(example),
            _ => train.push(example),
        }
    }
    if eval.is_empty() {
        let held = (train.len() / 10).max(1);
        eval = train.split_off(train.len().saturating_sub(held));
    }
    if train.is_empty() {
        return Err("the data set has no training examples".into());
    }
    Ok((train, eval))
}

/// Every example of a data file, whatever its split (the validator's held-out set).
pub fn read_all(path: &Path, tok: &dyn Tokenizer, max_seq_len: usize) -> Result<Vec<Sequence>> {
    let bytes = read_maybe_compressed(path)?;
    let lines = parse_lines(&bytes, tok, max_seq_len).map_err(|m| Error::data(path, m))?;
    Ok(lines.into_iter().map(|(seq, _)| seq).collect())
}

/// A file's bytes, decompressed when they are a zstd frame.
pub fn read_maybe_compressed(path: &Path) -> Result<Vec<u8>> {
    decompress_if_zstd(crate::format::files::read(path)?).map_err(|m| Error::data(path, m))
}

/// `raw` decompressed when it is a zstd frame (to at most [`MAX_DATA`] bytes), else as it is.
pub fn decompress_if_zstd(raw: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    if raw.starts_with(&ZSTD_MAGIC) {
        crate::format::compressed::decompress(&raw, MAX_DATA)
    } else {
        Ok(raw)
    }
}

/// Tokenized examples with their split markers; fails on bad UTF-8, bad JSON, overlong
/// examples, or no examples at all.
fn parse_lines(
    bytes: &[u8],
    tok: &dyn Tokenizer,
    max_seq_len: usize,
) -> std::result::Result<Vec<(Sequence, Option<Split>)>, String> {
    let mut out = Vec::new();
    for (line, ex) in parse_examples(bytes)? {
        let seq = tokenize(&ex, tok);
        if seq.ids.len() > max_seq_len {
            return Err(format!(
                "line {line}: example is {} tokens, longer than max_seq_len {max_seq_len}",
                seq.ids.len()
            ));
        }
        out.push((seq, ex.split));
    }
    Ok(out)
}

/// The examples of JSONL bytes with their line numbers (from 1), blank lines skipped; fails on
/// bad UTF-8, bad JSON, or no examples at all. Every skill's data reader starts here.
pub fn parse_examples(bytes: &[u8]) -> std::result::Result<Vec<(usize, Example)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        format!(
            "line {line}: not valid UTF-8 (byte offset {})",
            e.valid_up_to()
        )
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push((i + 1, ex));
    }
    if out.is_empty() {
        return Err("the data set is empty: no examples".into());
    }
    Ok(out)
}

fn tokenize(ex: &Example, tok: &dyn Tokenizer) -> Sequence {
    let mut ids = vec![tok.bos()];
    ids.extend(tok.encode(&ex.prompt));
    let completion_start = ids.len();
    ids.extend(tok.encode(&ex.completion));
    ids.push(tok.eos());
    Sequence {
        ids,
        completion_start,
    }
}

/// A padded batch ready for the model.
#[derive(Debug)]
pub struct Batch {
    /// Input ids (batch, seq).
    pub inputs: Tensor,
    /// The flat (batch·seq) indices of the positions that count towards the loss: those whose
    /// next token is a completion token (or EOS). Only these reach the output head.
    pub positions: Tensor,
    /// The next-token target at each of `positions`.
    pub targets: Tensor,
    /// Number of positions that count towards the loss.
    pub n_tokens: usize,
}

impl Batch {
    /// Pads `seqs` on the right to the longest and builds inputs, counted positions and targets.
    pub fn new(seqs: &[&Sequence], pad: u32, device: &Device) -> candle_core::Result<Self> {
        let len = seqs.iter().map(|s| s.ids.len() - 1).max().unwrap_or(1);
        let mut inputs = Vec::with_capacity(seqs.len() * len);
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        for (row, s) in seqs.iter().enumerate() {
            for pos in 0..len {
                inputs.push(if pos < s.ids.len() { s.ids[pos] } else { pad });
                // Position `pos` predicts token `pos + 1`; only completion tokens count.
                if pos + 1 < s.ids.len() && pos + 1 >= s.completion_start {
                    positions.push((row * len + pos) as u32);
                    targets.push(s.ids[pos + 1]);
                }
            }
        }
        let n_tokens = positions.len();
        Ok(Self {
            inputs: Tensor::from_vec(inputs, (seqs.len(), len), device)?,
            positions: Tensor::from_vec(positions, n_tokens, device)?,
            targets: Tensor::from_vec(targets, n_tokens, device)?,
            n_tokens,
        })
    }
}
