//! The `data` target: `aginet_fuzz_targets::data` on the fuzzer's bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aginet_fuzz_targets::data::run(data));
