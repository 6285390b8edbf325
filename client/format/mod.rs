//! The files agiNet reads and writes, and the plain data they carry: the bottom layer, which
//! imports nothing of the crate but the error type.

pub mod adapter;
pub mod arch;
pub mod checkpoint;
pub mod compressed;
pub mod config;
pub mod delta;
pub mod files;
pub mod gguf;
pub mod gguf_header;
pub mod manifest;
pub mod report;
pub mod signed;
pub mod tensors;
