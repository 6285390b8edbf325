//! Text: the tokenizers of the skills' bases and the work unit's prompt/completion data.

pub mod data;
pub mod sentencepiece;
pub mod tokenizer;
pub mod wordpiece;
