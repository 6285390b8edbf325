//! The library's error type: every failure names the file (or field) it concerns and carries the
//! class the app turns into its exit code.

use std::path::{Path, PathBuf};

/// A `Result` whose error is [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong, grouped by what a volunteer or operator would have to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The work unit's `config` is missing, unparsable, or names values the app does not accept.
    #[error("config {path}: {msg}")]
    Config { path: PathBuf, msg: String },
    /// The GGUF base is unreadable, malformed, or disagrees with the skill.
    #[error("model {path}: {msg}")]
    Model { path: PathBuf, msg: String },
    /// The adapter file is unreadable or does not fit the base and config.
    #[error("adapter {path}: {msg}")]
    Adapter { path: PathBuf, msg: String },
    /// The data set is empty, not UTF-8, or not the JSONL the task expects.
    #[error("data {path}: {msg}")]
    Data { path: PathBuf, msg: String },
    /// A result file (delta, report) is malformed or of an unknown version.
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Training produced a non-finite loss or gradient.
    #[error("training diverged at step {step}: {msg}")]
    Diverged { step: u32, msg: String },
    /// The compute device (a GPU) cannot be opened or used: no such device, no driver, or a
    /// build without GPU support.
    #[error("device: {0}")]
    Device(String),
    /// A tensor operation failed: a bug, not bad input.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A config error on `path`.
    pub fn config(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Self::Config {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// A model (GGUF) error on `path`.
    pub fn model(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Self::Model {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// An adapter error on `path`.
    pub fn adapter(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Self::Adapter {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// A data set error on `path`.
    pub fn data(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Self::Data {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// A malformed result file (`delta`, `report`, checkpoint) at `path`.
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Self::Format {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
}
