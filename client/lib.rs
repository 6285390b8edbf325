//! agiNet's volunteer app and the ML core the server reuses: LoRA fine-tuning of a quantized
//! GGUF skill model, with deterministic, resumable training and hashed result files.
//!
//! The library is layered along the data flow; each layer imports only from the layers below it
//! (`tests/architecture.rs` checks it, `docs/architecture.md` walks it):
//!
//! | layer | holds |
//! |---|---|
//! | [`format`](mod@format) | the files: work unit config, manifest, adapter, delta, report, checkpoint, GGUF, signed files |
//! | [`text`] | tokenizers and the work unit's text data |
//! | [`nn`] | numeric kernels, the frozen quantized layer, LoRA, the model architectures |
//! | [`task`] | the skills' data recipes and the vision data reader |
//! | [`learn`] | training loop, optimizer, objectives and rewards, generation, scoring |
//! | [`app`] | one work unit end to end, BOINC, exit codes |
//!
//! The app's entry point is `client/main.rs`; [`app::workunit::run`] is one work unit end to end.

pub mod app;
pub mod error;
pub mod format;
pub mod learn;
pub mod nn;
pub mod task;
#[cfg(test)]
mod test_util;
pub mod text;

pub use error::{Error, Result};
