//! Text: the tokenizers of the skills' bases and the work unit's prompt/completion data.
//!
//! A base's tokenizer comes from its GGUF: a Hugging Face `tokenizer.json` the file carries
//! under `tokenizer.huggingface.json` (GGUF's key for it), else the vocabulary its
//! `tokenizer.ggml.model` names, built with the `tokenizers` crate (SentencePiece, WordPiece),
//! or the tiny model's byte vocabulary.

pub mod data;
pub mod pretrained;
pub mod sentencepiece;
pub mod tokenizer;
pub mod wordpiece;

use crate::error::Result;
use crate::format::gguf::Gguf;
use pretrained::Pretrained;
use tokenizer::{ByteTokenizer, Tokenizer};

/// The GGUF key of a base's Hugging Face `tokenizer.json` (the text of the file).
pub const HF_JSON_KEY: &str = "tokenizer.huggingface.json";

/// The tokenizer a GGUF base declares.
pub fn from_gguf(g: &Gguf) -> Result<Box<dyn Tokenizer>> {
    if g.has(HF_JSON_KEY) {
        let inner = tokenizers::Tokenizer::from_bytes(g.get_str(HF_JSON_KEY)?)
            .map_err(|e| g.error(format!("metadata key {HF_JSON_KEY}: {e}")))?;
        return Ok(Box::new(Pretrained::with_gguf_ids(inner, g)?));
    }
    let model = g.get_str("tokenizer.ggml.model")?;
    match model {
        ByteTokenizer::MODEL_NAME => {
            let tokens = g.get_strings("tokenizer.ggml.tokens")?;
            if tokens != ByteTokenizer.token_strings() {
                return Err(g.error("tokenizer.ggml.tokens is not the aginet byte vocabulary"));
            }
            Ok(Box::new(ByteTokenizer))
        }
        sentencepiece::MODEL_NAME => Ok(Box::new(sentencepiece::from_gguf(g)?)),
        wordpiece::MODEL_NAME => Ok(Box::new(wordpiece::from_gguf(g)?)),
        other => Err(g.error(format!(
            "tokenizer.ggml.model {other:?} is not supported by this build"
        ))),
    }
}
