//! The SentencePiece tokenizer a GGUF describes with `tokenizer.ggml.model = "llama"`: pieces
//! with scores, byte fallback, and control and user-defined tokens (Gemma 3's 262,144 tokens).
//!
//! Encoding, as SentencePiece's BPE model does it:
//! 1. Control and user-defined tokens (`<start_of_turn>`, `\n\n`, runs of spaces, …) are cut out
//!    of the text first, the longest match at the leftmost position winning.
//! 2. In each piece of text between them, spaces become `▁` (U+2581), with one in front when the
//!    GGUF asks for `add_space_prefix`.
//! 3. Starting from single characters, the adjacent pair whose concatenation is a normal piece
//!    with the highest score is merged (the leftmost on ties), until no pair is a piece.
//! 4. A symbol that is still not a piece is written as its UTF-8 bytes (`<0xNN>` tokens).
//!
//! It does not normalise text (Gemma's SentencePiece model applies none) and does not decode.

use crate::error::Result;
use crate::format::gguf::Gguf;
use crate::text::tokenizer::Tokenizer;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// `tokenizer.ggml.token_type` values (llama.cpp's).
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const BYTE: i32 = 6;

/// The word-boundary mark SentencePiece writes for a space.
const SPACE: char = '\u{2581}';

/// A GGUF's SentencePiece vocabulary.
pub struct SentencePiece {
    /// Normal pieces: id and score.
    pieces: HashMap<String, (u32, f32)>,
    /// Control and user-defined tokens by first character, longest first.
    specials: HashMap<char, Vec<(String, u32)>>,
    /// The id of each byte's `<0xNN>` token.
    bytes: Vec<u32>,
    /// What each id writes when decoded.
    texts: Vec<Decoded>,
    add_space_prefix: bool,
    bos: u32,
    eos: u32,
    pad: u32,
}

impl SentencePiece {
    /// `tokenizer.ggml.model` of these vocabularies.
    pub const MODEL_NAME: &'static str = "llama";

    /// Reads the vocabulary from the GGUF's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let tokens = g.get_strings("tokenizer.ggml.tokens")?;
        let scores = g.get_f32s("tokenizer.ggml.scores")?;
        let types = g.get_i32s("tokenizer.ggml.token_type")?;
        if scores.len() != tokens.len() || types.len() != tokens.len() {
            return Err(g.error(format!(
                "tokenizer.ggml: {} tokens but {} scores and {} types",
                tokens.len(),
                scores.len(),
                types.len()
            )));
        }
        let mut pieces = HashMap::with_capacity(tokens.len());
        let mut specials: HashMap<char, Vec<(String, u32)>> = HashMap::new();
        let mut bytes = vec![u32::MAX; 256];
        let mut texts = Vec::with_capacity(tokens.len());
        for (id, ((token, score), kind)) in tokens.into_iter().zip(scores).zip(types).enumerate() {
            let id = id as u32;
            texts.push(match kind {
                NORMAL | USER_DEFINED => Decoded::Text(token.replace(SPACE, " ")),
                BYTE => Decoded::Byte(0),
                _ => Decoded::Nothing,
            });
            match kind {
                NORMAL => {
                    pieces.insert(token, (id, score));
                }
                CONTROL | USER_DEFINED => {
                    if let Some(first) = token.chars().next() {
                        specials.entry(first).or_default().push((token, id));
                    }
                }
                BYTE => {
                    let byte = token
                        .strip_prefix("<0x")
                        .and_then(|t| t.strip_suffix('>'))
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| g.error(format!("byte token {id} is {token:?}")))?;
                    bytes[byte as usize] = id;
                    texts[id as usize] = Decoded::Byte(byte);
                }
                _ => {}
            }
        }
        if let Some(missing) = bytes.iter().position(|id| *id == u32::MAX) {
            return Err(g.error(format!(
                "tokenizer.ggml.tokens has no byte token <0x{missing:02X}> for byte fallback"
            )));
        }
        for list in specials.values_mut() {
            list.sort_by_key(|(token, _)| std::cmp::Reverse(token.len()));
        }
        let id = |key: &str| g.get_usize(key).map(|v| v as u32);
        Ok(Self {
            pieces,
            specials,
            bytes,
            texts,
            add_space_prefix: g.get_bool_or("tokenizer.ggml.add_space_prefix", true)?,
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
        })
    }

    /// The special token starting at the front of `text`, if any (the longest).
    fn special_at(&self, text: &str) -> Option<(usize, u32)> {
        let first = text.chars().next()?;
        self.specials
            .get(&first)?
            .iter()
            .find(|(token, _)| text.starts_with(token.as_str()))
            .map(|(token, id)| (token.len(), *id))
    }

    /// Encodes text that holds no special token.
    fn encode_piece(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let mut normalized = String::with_capacity(text.len() + 3);
        if self.add_space_prefix {
            normalized.push(SPACE);
        }
        normalized.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));
        let symbols = merge(&normalized, |s| self.pieces.get(s).map(|p| p.1));
        for symbol in symbols {
            match self.pieces.get(symbol) {
                Some((id, _)) => out.push(*id),
                None => out.extend(symbol.bytes().map(|b| self.bytes[b as usize])),
            }
        }
    }
}

impl Tokenizer for SentencePiece {
    fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut plain_start = 0;
        let mut at = 0;
        while at < text.len() {
            if let Some((len, id)) = self.special_at(&text[at..]) {
                self.encode_piece(&text[plain_start..at], &mut out);
                out.push(id);
                at += len;
                plain_start = at;
            } else {
                at += text[at..].chars().next().map_or(1, char::len_utf8);
            }
        }
        self.encode_piece(&text[plain_start..], &mut out);
        out
    }
    fn decode(&self, ids: &[u32]) -> String {
        let mut out = Vec::new();
        for id in ids {
            match self.texts.get(*id as usize) {
                Some(Decoded::Text(t)) => out.extend_from_slice(t.as_bytes()),
                Some(Decoded::Byte(b)) => out.push(*b),
                _ => {}
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    fn bos(&self) -> u32 {
        self.bos
    }
    fn eos(&self) -> u32 {
        self.eos
    }
    fn pad(&self) -> u32 {
        self.pad
    }
}

/// What a token writes when decoded.
#[derive(Clone, Debug)]
enum Decoded {
    /// Its text, with `▁` as a space.
    Text(String),
    /// One byte of UTF-8 (a byte-fallback token).
    Byte(u8),
    /// Nothing (control tokens).
    Nothing,
}

/// A candidate merge of two adjacent symbols, ordered by score, then leftmost first.
#[derive(PartialEq)]
struct Candidate {
    score: f32,
    left: usize,
    right: usize,
    /// The merged length, to skip candidates made stale by another merge.
    len: usize,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Splits `text` into the symbols BPE merging by `score` leaves (a piece's score, `None` for a
/// string that is no piece).
fn merge(text: &str, score: impl Fn(&str) -> Option<f32>) -> Vec<&str> {
    // Symbols as byte ranges in a linked list; merged-away symbols get length 0.
    let start: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let n = start.len();
    let mut len: Vec<usize> = (0..n)
        .map(|i| start.get(i + 1).copied().unwrap_or(text.len()) - start[i])
        .collect();
    let mut next: Vec<Option<usize>> = (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect();
    let mut prev: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
    let mut heap = BinaryHeap::new();
    let candidate = |left: usize, right: usize, start: &[usize], len: &[usize]| {
        let merged = &text[start[left]..start[right] + len[right]];
        score(merged).map(|score| Candidate {
            score,
            left,
            right,
            len: merged.len(),
        })
    };
    for i in 1..n {
        heap.extend(candidate(i - 1, i, &start, &len));
    }
    while let Some(c) = heap.pop() {
        if len[c.left] == 0 || len[c.right] == 0 || len[c.left] + len[c.right] != c.len {
            continue;
        }
        len[c.left] = c.len;
        len[c.right] = 0;
        next[c.left] = next[c.right];
        if let Some(after) = next[c.right] {
            prev[after] = Some(c.left);
            heap.extend(candidate(c.left, after, &start, &len));
        }
        if let Some(before) = prev[c.left] {
            heap.extend(candidate(before, c.left, &start, &len));
        }
    }
    let mut symbols = Vec::new();
    let mut at = (n > 0).then_some(0);
    while let Some(i) = at {
        symbols.push(&text[start[i]..start[i] + len[i]]);
        at = next[i];
    }
    symbols
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_the_best_scoring_pair_first() {
        let scores: HashMap<&str, f32> =
            HashMap::from([("ab", 1.0), ("bc", 2.0), ("abc", 0.5), ("cd", -1.0)]);
        let score = |s: &str| scores.get(s).copied();
        // "bc" outscores "ab"; then "a"+"bc" is the piece "abc"; "abc"+"d" is none.
        assert_eq!(merge("abcd", score), ["abc", "d"]);
        assert_eq!(merge("abab", score), ["ab", "ab"]);
        assert_eq!(merge("", score), Vec::<&str>::new());
        assert_eq!(merge("é▁x", score), ["é", "▁", "x"]);
    }
}
