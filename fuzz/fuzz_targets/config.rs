//! Any bytes as a work unit's `config`: parse errors only, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = aginet::format::config::WorkConfig::parse(data);
});
