//! The `adapter` target: `aginet_fuzz_targets::adapter` on the fuzzer's bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aginet_fuzz_targets::adapter::run(data));
