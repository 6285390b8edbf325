//! What an encoder's work unit minimises and reports: a contrastive loss over (query, passage)
//! pairs with the batch's other passages as negatives ([`EncoderObjective`], the training
//! loop's [`Objective`]), and the `recall_at_5` reward: the fraction of queries whose own
//! passage is among the 5 most similar of all the set's passages.
//!
//! A pair is a data line's prompt (the query) and completion (the passage), each tokenized as
//! `[CLS] text [SEP]`.

use crate::error::{Error, Result};
use crate::learn::objective::Objective;
use crate::nn::model::bert::BertEncoder;
use crate::text::data::{parse_examples, read_maybe_compressed, split, Split};
use crate::text::tokenizer::Tokenizer;
use candle_core::{Device, Tensor};
use std::path::Path;

/// The reward kind of an encoder's work unit.
pub const REWARD_KIND: &str = crate::format::config::reward_kind::RECALL_AT_5;
/// How many of the most similar passages count as found.
pub const RECALL_K: usize = 5;
/// The scale of the cosine similarities in the loss (sentence-transformers' default).
const SCALE: f64 = 20.0;

/// A query and the passage it should retrieve, as token ids with `[CLS]` and `[SEP]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryPassage {
    /// The query.
    pub query: Vec<u32>,
    /// The passage.
    pub passage: Vec<u32>,
}

/// A work unit's pairs, split.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PairDataset {
    /// Training pairs.
    pub train: Vec<QueryPassage>,
    /// Evaluation pairs.
    pub eval: Vec<QueryPassage>,
}

impl PairDataset {
    /// Reads and splits a data file (plain or zstd-compressed). Lines marked `eval` are the
    /// work unit's own check; when none is, the last tenth (at least one) is.
    pub fn read(path: &Path, tok: &dyn Tokenizer, max_seq_len: usize) -> Result<Self> {
        let bytes = read_maybe_compressed(path)?;
        Self::parse(&bytes, tok, max_seq_len).map_err(|m| Error::data(path, m))
    }

    /// Every pair of a data file whatever its split (the server's held-out sets).
    pub fn read_all(
        path: &Path,
        tok: &dyn Tokenizer,
        max_seq_len: usize,
    ) -> Result<Vec<QueryPassage>> {
        let bytes = read_maybe_compressed(path)?;
        let lines = parse_lines(&bytes, tok, max_seq_len).map_err(|m| Error::data(path, m))?;
        Ok(lines.into_iter().map(|(pair, _)| pair).collect())
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

/// The tokenized pairs of JSONL bytes with their split markers.
fn parse_lines(
    bytes: &[u8],
    tok: &dyn Tokenizer,
    max_seq_len: usize,
) -> std::result::Result<Vec<(QueryPassage, Option<Split>)>, String> {
    let encode = |line: usize, what: &str, text: &str| {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        ids.push(tok.bos());
        ids.extend(tok.encode(text));
        ids.push(tok.eos());
        if ids.len() > max_seq_len {
            return Err(format!(
                "line {line}: the {what} is {} tokens, more than max_seq_len {max_seq_len}",
                ids.len()
            ));
        }
        Ok(ids)
    };
    parse_examples(bytes)?
        .into_iter()
        .map(|(line, ex)| {
            let pair = QueryPassage {
                query: encode(line, "query", &ex.prompt)?,
                passage: encode(line, "passage", &ex.completion)?,
            };
            Ok((pair, ex.split))
        })
        .collect()
}

/// Token ids (n, longest) padded with `pad`, and the mask (n, longest) of the real tokens.
pub fn batch(seqs: &[&[u32]], pad: u32, device: &Device) -> Result<(Tensor, Tensor)> {
    let len = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(seqs.len() * len);
    let mut mask = Vec::with_capacity(seqs.len() * len);
    for s in seqs {
        ids.extend(
            s.iter()
                .copied()
                .chain(std::iter::repeat_n(pad, len - s.len())),
        );
        mask.extend((0..len).map(|i| u32::from(i < s.len())));
    }
    Ok((
        Tensor::from_vec(ids, (seqs.len(), len), device)?,
        Tensor::from_vec(mask, (seqs.len(), len), device)?,
    ))
}

/// Unit-length embeddings (n, width) of `seqs`.
fn embed(model: &BertEncoder, seqs: &[&[u32]], pad: u32, device: &Device) -> Result<Tensor> {
    let (ids, mask) = batch(seqs, pad, device)?;
    model.embed(&ids, &mask)
}

/// An encoder's objective over a work unit's pairs.
pub struct EncoderObjective<'a> {
    /// The encoder, built over the optimizer's variables.
    pub model: &'a BertEncoder,
    /// The pairs.
    pub data: &'a PairDataset,
    /// The tokenizer's padding id.
    pub pad: u32,
    /// Where tensors live.
    pub device: &'a Device,
}

impl Objective for EncoderObjective<'_> {
    /// The mean over the picked pairs of the cross-entropy of picking the query's own passage
    /// among the batch's passages by scaled cosine similarity; counts pairs.
    fn loss(&self, picked: &[usize]) -> Result<(Tensor, usize)> {
        let pairs: Vec<&QueryPassage> = picked.iter().map(|&i| &self.data.train[i]).collect();
        let queries: Vec<&[u32]> = pairs.iter().map(|p| p.query.as_slice()).collect();
        let passages: Vec<&[u32]> = pairs.iter().map(|p| p.passage.as_slice()).collect();
        let q = embed(self.model, &queries, self.pad, self.device)?;
        let p = embed(self.model, &passages, self.pad, self.device)?;
        let scores = (q.matmul(&p.t()?)? * SCALE)?;
        let targets = Tensor::arange(0u32, pairs.len() as u32, self.device)?;
        let loss = candle_nn::loss::cross_entropy(&scores, &targets)?;
        Ok((loss, pairs.len()))
    }
}

/// The `recall_at_5` reward of the encoder on `pairs`, embedding `batch_size` texts at a time.
pub fn reward(
    model: &BertEncoder,
    pairs: &[QueryPassage],
    batch_size: usize,
    pad: u32,
    device: &Device,
) -> Result<f64> {
    if pairs.is_empty() {
        return Ok(0.0);
    }
    let embed_all = |texts: Vec<&[u32]>| -> Result<Tensor> {
        let parts = texts
            .chunks(batch_size.max(1))
            .map(|chunk| Ok(embed(model, chunk, pad, device)?.detach()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    };
    let q = embed_all(pairs.iter().map(|p| p.query.as_slice()).collect())?;
    let p = embed_all(pairs.iter().map(|p| p.passage.as_slice()).collect())?;
    let scores = q.matmul(&p.t()?)?.to_vec2::<f32>()?;
    Ok(recall_at(&scores, RECALL_K))
}

/// The fraction of rows `i` of `scores` (query × passage similarities) in which passage `i`
/// is among the `k` highest; a tie counts in the query's favour.
pub fn recall_at(scores: &[Vec<f32>], k: usize) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let found = scores
        .iter()
        .enumerate()
        .filter(|(i, row)| {
            let own = row[*i];
            row.iter().filter(|s| **s > own).count() < k
        })
        .count();
    found as f64 / scores.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenizer::ByteTokenizer;

    #[test]
    fn recall_counts_the_own_passage_among_the_k_most_similar() {
        let scores = vec![
            vec![0.9, 0.1, 0.2],
            vec![0.8, 0.5, 0.7],
            vec![0.3, 0.3, 0.1],
        ];
        // Row 0: first; row 1: third; row 2: third.
        assert_eq!(recall_at(&scores, 1), 1.0 / 3.0);
        assert_eq!(recall_at(&scores, 2), 1.0 / 3.0);
        assert_eq!(recall_at(&scores, 3), 1.0);
        assert_eq!(recall_at(&[], 5), 0.0);
    }

    #[test]
    fn pairs_are_tokenized_with_cls_and_sep_and_overlong_ones_refused() {
        let tok = ByteTokenizer;
        let text = "{\"prompt\": \"ab\", \"completion\": \"xyz\"}\n\
                    {\"prompt\": \"c\", \"completion\": \"d\", \"split\": \"eval\"}\n";
        let d = PairDataset::parse(text.as_bytes(), &tok, 8).unwrap();
        let (bos, eos) = (ByteTokenizer::BOS, ByteTokenizer::EOS);
        assert_eq!(d.train[0].query, [bos, 97, 98, eos]);
        assert_eq!(d.train[0].passage, [bos, 120, 121, 122, eos]);
        assert_eq!(d.eval.len(), 1);
        let e = PairDataset::parse(text.as_bytes(), &tok, 4).unwrap_err();
        assert!(
            e.contains("line 1") && e.contains("passage is 5 tokens"),
            "{e}"
        );
    }
}
