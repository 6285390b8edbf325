//! agiNet's volunteer app and the ML core the server reuses: LoRA fine-tuning of a quantized
//! GGUF skill model, with deterministic, resumable training and hashed result files.
//!
//! The app's entry point is `client/main.rs`; [`workunit::run`] is one work unit end to end.

pub mod adapter;
pub mod allocator;
pub mod boinc;
pub mod build_info;
pub mod checkpoint;
pub mod classify;
pub mod config;
pub mod data;
pub mod delta;
pub mod dequantize;
pub mod device;
pub mod error;
pub mod eval;
pub mod exit;
mod fast_exp;
pub mod files;
pub mod frozen;
pub mod generate;
pub mod gguf;
pub mod head_loss;
pub mod image_data;
pub mod learner;
pub mod lora;
mod lora_op;
pub mod manifest;
pub mod micro_batch;
pub mod model;
pub mod optim;
pub mod plan;
pub mod report;
pub mod retrieve;
pub mod sampler;
pub mod score;
pub mod sentencepiece;
mod serial_gemm;
pub mod signed;
mod storage;
pub mod task;
pub mod tensors;
#[cfg(test)]
mod test_util;
pub mod threads;
pub mod tokenizer;
pub mod train;
pub mod wordpiece;
pub mod workunit;

pub use error::{Error, Result};
