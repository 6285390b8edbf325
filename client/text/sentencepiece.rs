//! The SentencePiece vocabulary a GGUF describes with `tokenizer.ggml.model = "llama"` (pieces
//! with scores, byte fallback, control and user-defined tokens; Gemma 3's 262,144 tokens), built
//! as a `tokenizers` BPE model that encodes as SentencePiece's BPE does:
//!
//! 1. Control and user-defined tokens (`<start_of_turn>`, `\n\n`, runs of spaces, …) are cut out
//!    of the text first, the longest match at the leftmost position winning (added tokens, not
//!    normalized; control tokens are special, so decoding skips them).
//! 2. In each piece of text between them, spaces become `▁` (U+2581), with one in front when the
//!    GGUF asks for `add_space_prefix` (the normalizer).
//! 3. Starting from single characters, the adjacent pair whose concatenation is a normal piece
//!    with the highest score is merged, until no pair is a piece. The GGUF has scores, not
//!    merges, so the merges are derived from them: every split of a normal piece into two normal
//!    pieces, ranked by the piece's score (higher first), then by its id.
//! 4. A character that is no piece is written as its UTF-8 bytes (`<0xNN>` tokens).
//!
//! Decoding writes `▁` as a space, joins byte tokens into UTF-8 (U+FFFD where they are not) and
//! writes nothing for control tokens.

use crate::error::Result;
use crate::format::gguf::Gguf;
use crate::text::pretrained::Pretrained;
use std::collections::HashMap;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper};

/// `tokenizer.ggml.model` of these vocabularies.
pub const MODEL_NAME: &str = "llama";

/// `tokenizer.ggml.token_type` values (llama.cpp's).
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const BYTE: i32 = 6;

/// The word-boundary mark SentencePiece writes for a space.
const SPACE: &str = "\u{2581}";

/// Builds the tokenizer from the GGUF's `tokenizer.ggml.*` metadata.
pub fn from_gguf(g: &Gguf) -> Result<Pretrained> {
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
    let mut vocab: HashMap<String, u32> = HashMap::with_capacity(tokens.len());
    let mut normal: HashMap<&str, (u32, f32)> = HashMap::new();
    let mut added = Vec::new();
    let mut bytes = [false; 256];
    for (id, ((token, score), kind)) in tokens.iter().zip(&scores).zip(&types).enumerate() {
        let id = id as u32;
        vocab.entry(token.clone()).or_insert(id);
        match *kind {
            NORMAL => {
                normal.entry(token.as_str()).or_insert((id, *score));
            }
            CONTROL | USER_DEFINED => {
                added.push(AddedToken::from(token.clone(), *kind == CONTROL).normalized(false))
            }
            BYTE => {
                let byte = token
                    .strip_prefix("<0x")
                    .and_then(|t| t.strip_suffix('>'))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| g.error(format!("byte token {id} is {token:?}")))?;
                bytes[byte as usize] = true;
            }
            _ => {}
        }
    }
    if let Some(missing) = bytes.iter().position(|present| !present) {
        return Err(g.error(format!(
            "tokenizer.ggml.tokens has no byte token <0x{missing:02X}> for byte fallback"
        )));
    }
    let model = BPE::builder()
        .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges(&normal))
        .byte_fallback(true)
        .build()
        .map_err(|e| g.error(format!("tokenizer.ggml: {e}")))?;
    let mut normalizers = Vec::new();
    if g.get_bool_or("tokenizer.ggml.add_space_prefix", true)? {
        normalizers.push(NormalizerWrapper::Prepend(Prepend::new(SPACE.into())));
    }
    let spaces = Replace::new(" ", SPACE).map_err(|e| g.error(e.to_string()))?;
    normalizers.push(NormalizerWrapper::Replace(spaces));
    let as_space = Replace::new(SPACE, " ").map_err(|e| g.error(e.to_string()))?;
    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(NormalizerSequence::new(normalizers)))
        .map_err(|e| g.error(e.to_string()))?
        .with_decoder(Some(DecoderSequence::new(vec![
            DecoderWrapper::Replace(as_space),
            DecoderWrapper::ByteFallback(ByteFallback::new()),
            DecoderWrapper::Fuse(Fuse::new()),
        ])));
    tokenizer
        .add_tokens(added)
        .map_err(|e| g.error(e.to_string()))?;
    Pretrained::with_gguf_ids(tokenizer, g)
}

/// The merges SentencePiece's scores imply: each split of a normal piece into two normal
/// pieces, best-scoring piece first (ties by id, then the split from the left).
fn merges(normal: &HashMap<&str, (u32, f32)>) -> Vec<(String, String)> {
    let mut ranked: Vec<(f32, u32, usize, &str, &str)> = Vec::new();
    for (piece, (id, score)) in normal {
        for (at, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(at);
            if normal.contains_key(left) && normal.contains_key(right) {
                ranked.push((*score, *id, at, left, right));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    ranked
        .into_iter()
        .map(|(_, _, _, l, r)| (l.to_string(), r.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_the_scores_and_need_both_halves_to_be_pieces() {
        let normal: HashMap<&str, (u32, f32)> = HashMap::from([
            ("a", (0, -5.0)),
            ("b", (1, -5.0)),
            ("c", (2, -5.0)),
            ("ab", (3, 1.0)),
            ("bc", (4, 2.0)),
            ("abc", (5, 0.5)),
            ("xd", (6, 3.0)),
        ]);
        let m = merges(&normal);
        let pairs: Vec<(&str, &str)> = m.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect();
        // "xd" has no halves in the vocabulary; "abc" splits two ways, after "bc" and "ab".
        assert_eq!(pairs, [("b", "c"), ("a", "b"), ("a", "bc"), ("ab", "c")]);
    }
}
