//! Any bytes as a GGUF base: the reader must return an error, never panic or over-allocate.
#![no_main]

use aginet::format::gguf::Gguf;
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.gguf");
    if let Ok(g) = Gguf::from_reader(path, Box::new(Cursor::new(data.to_vec()))) {
        let _ = aginet::nn::model::llama::LlamaConfig::from_gguf(&g);
        let _ = aginet::text::from_gguf(&g);
    }
});
