//! The bodies of agiNet's fuzz targets, one module per target: each takes one input, hands it
//! to a reader of untrusted bytes (the server's of a volunteer's result, the app's of the
//! files a project sends), and panics only on a finding. The libFuzzer binaries (`fuzz/`,
//! built by `ci/fuzz.sh`) call them; so does this crate's test, which replays every input that
//! ever found a bug (`fuzz/regressions/<target>/`) in the normal test suite.

pub mod adapter;
pub mod config;
pub mod data;
pub mod delta;
pub mod delta_payload;
pub mod gguf;
pub mod report;
pub mod server;
pub mod validate;
pub mod validate_built;

/// A target's body over raw input bytes (a structured target decodes its input from the bytes
/// as libFuzzer does).
pub type Body = fn(&[u8]);

/// Every target by name, with its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("adapter", adapter::run),
    ("config", config::run),
    ("data", data::run),
    ("delta", delta::run),
    ("delta_payload", delta_payload::run),
    ("gguf", gguf::run),
    ("report", report::run),
    ("validate", validate::run),
    ("validate_built", validate_built::run_bytes),
];
