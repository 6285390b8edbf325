//! The app's exit codes, one per failure class, in one place. Documented in `docs/exit-codes.md`.

use crate::error::Error;

/// Success.
pub const OK: u8 = 0;
/// A bug or an unexpected tensor failure.
pub const INTERNAL: u8 = 1;
/// Bad command line (clap's own code).
pub const USAGE: u8 = 2;
/// The `config` is missing, malformed or out of range.
pub const CONFIG: u8 = 3;
/// The `model` is unreadable, corrupt, or not the base the config names.
pub const MODEL: u8 = 4;
/// The `adapter` is unreadable or does not fit.
pub const ADAPTER: u8 = 5;
/// The `data` is empty, not UTF-8 or not valid JSONL.
pub const DATA: u8 = 6;
/// Reading or writing a file failed (disk full, permissions), or a result file is malformed.
pub const IO: u8 = 7;
/// Training diverged (non-finite loss or gradient).
pub const DIVERGED: u8 = 8;

/// The GPU asked for cannot be used (no such device, no driver, no GPU support in the build).
pub const DEVICE: u8 = 9;

/// The exit code for a library error.
pub fn code(e: &Error) -> u8 {
    match e {
        Error::Config { .. } => CONFIG,
        Error::Model { .. } => MODEL,
        Error::Adapter { .. } => ADAPTER,
        Error::Data { .. } => DATA,
        Error::Io { .. } | Error::Format { .. } => IO,
        Error::Diverged { .. } => DIVERGED,
        Error::Device(_) => DEVICE,
        _ => INTERNAL,
    }
}
