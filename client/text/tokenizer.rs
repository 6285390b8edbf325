//! agiNet's tokenizer trait and the byte vocabulary of the tiny test model. The skills' real
//! vocabularies are built with the `tokenizers` crate (`pretrained.rs`, `sentencepiece.rs`,
//! `wordpiece.rs`); `text::from_gguf` picks one for a base.

/// Turns text into token ids and back.
pub trait Tokenizer: Send + Sync {
    /// Token ids of `text`, without BOS or EOS.
    fn encode(&self, text: &str) -> Vec<u32>;
    /// The text of token ids (what a model generated); control tokens write nothing, ids
    /// outside the vocabulary are skipped, and bytes that are not UTF-8 become U+FFFD.
    fn decode(&self, ids: &[u32]) -> String;
    /// Beginning-of-sequence id.
    fn bos(&self) -> u32;
    /// End-of-sequence id.
    fn eos(&self) -> u32;
    /// Padding id.
    fn pad(&self) -> u32;
    /// The tokenizer as a Hugging Face `tokenizer.json`, where it has that form.
    fn to_json(&self) -> Option<String> {
        None
    }
}

/// One token per byte (ids 0–255), then `<s>`, `</s>`, `<pad>` and reserved ids up to 272.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByteTokenizer;

impl ByteTokenizer {
    /// `tokenizer.ggml.model` of this vocabulary.
    pub const MODEL_NAME: &'static str = "aginet-bytes";
    /// Vocabulary size (a multiple of 16, as candle's fast kernels like it).
    pub const VOCAB_SIZE: usize = 272;
    /// `<s>`.
    pub const BOS: u32 = 256;
    /// `</s>`.
    pub const EOS: u32 = 257;
    /// `<pad>`.
    pub const PAD: u32 = 258;

    /// The token strings stored in the GGUF (`<0x41>` for byte 0x41, as llama's byte fallback).
    pub fn token_strings(&self) -> Vec<String> {
        (0..Self::VOCAB_SIZE as u32)
            .map(|id| match id {
                0..=255 => format!("<0x{id:02X}>"),
                Self::BOS => "<s>".into(),
                Self::EOS => "</s>".into(),
                Self::PAD => "<pad>".into(),
                _ => format!("<unused{}>", id - Self::PAD - 1),
            })
            .collect()
    }
}

impl Tokenizer for ByteTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }
    fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().filter_map(|&id| u8::try_from(id).ok()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
    fn bos(&self) -> u32 {
        Self::BOS
    }
    fn eos(&self) -> u32 {
        Self::EOS
    }
    fn pad(&self) -> u32 {
        Self::PAD
    }
}
