//! A tokenizer of Hugging Face's `tokenizers` crate behind agiNet's [`Tokenizer`] trait: what the
//! bases' SentencePiece and WordPiece vocabularies are built as (`sentencepiece.rs`,
//! `wordpiece.rs`), or what a `tokenizer.json` holds. The same object serializes back to a
//! `tokenizer.json`, which the snapshot ships beside an exported adapter.

use crate::error::Result;
use crate::format::gguf::Gguf;
use crate::text::tokenizer::Tokenizer;

/// A `tokenizers` tokenizer and the ids agiNet's sequences start, end and pad with.
pub struct Pretrained {
    inner: tokenizers::Tokenizer,
    bos: u32,
    eos: u32,
    pad: u32,
}

impl Pretrained {
    /// Wraps `inner`, whose sequences start with `bos`, end with `eos` and are padded with `pad`.
    /// Padding and truncation a `tokenizer.json` may ask for are turned off: agiNet's batches
    /// pad and cut sequences themselves.
    pub fn new(mut inner: tokenizers::Tokenizer, bos: u32, eos: u32, pad: u32) -> Self {
        inner.with_padding(None);
        // Turning truncation off cannot fail (only a truncation's parameters are checked).
        let _ = inner.with_truncation(None);
        Self {
            inner,
            bos,
            eos,
            pad,
        }
    }

    /// [`Pretrained::new`] with the ids a GGUF base names (`tokenizer.ggml.bos_token_id`,
    /// `eos_token_id`, `padding_token_id`).
    pub fn with_gguf_ids(inner: tokenizers::Tokenizer, g: &Gguf) -> Result<Self> {
        let id = |key: &str| g.get_usize(key).map(|v| v as u32);
        Ok(Self::new(
            inner,
            id("tokenizer.ggml.bos_token_id")?,
            id("tokenizer.ggml.eos_token_id")?,
            id("tokenizer.ggml.padding_token_id")?,
        ))
    }
}

impl Tokenizer for Pretrained {
    /// The tokenizers built here cannot fail to encode (byte fallback, or `[UNK]`); a
    /// `tokenizer.json` whose pipeline does gives no ids for that text.
    fn encode(&self, text: &str) -> Vec<u32> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }
    fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, true).unwrap_or_default()
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
    fn to_json(&self) -> Option<String> {
        self.inner.to_string(true).ok()
    }
}
