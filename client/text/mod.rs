//! Text: the tokenizers of the skills' bases and the work unit's prompt/completion data.

pub mod data;
pub mod sentencepiece;
pub mod tokenizer;
pub mod wordpiece;

use crate::error::Result;
use crate::format::gguf::Gguf;
use sentencepiece::SentencePiece;
use tokenizer::{ByteTokenizer, Tokenizer};
use wordpiece::WordPiece;

/// The tokenizer a GGUF base declares.
pub fn from_gguf(g: &Gguf) -> Result<Box<dyn Tokenizer>> {
    let model = g.get_str("tokenizer.ggml.model")?;
    match model {
        ByteTokenizer::MODEL_NAME => {
            let tokens = g.get_strings("tokenizer.ggml.tokens")?;
            if tokens != ByteTokenizer.token_strings() {
                return Err(g.error("tokenizer.ggml.tokens is not the aginet byte vocabulary"));
            }
            Ok(Box::new(ByteTokenizer))
        }
        SentencePiece::MODEL_NAME => Ok(Box::new(SentencePiece::from_gguf(g)?)),
        WordPiece::MODEL_NAME => Ok(Box::new(WordPiece::from_gguf(g)?)),
        other => Err(g.error(format!(
            "tokenizer.ggml.model {other:?} is not supported by this build"
        ))),
    }
}
