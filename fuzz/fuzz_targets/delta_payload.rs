//! The `delta_payload` target: `aginet_fuzz_targets::delta_payload` on the fuzzer's bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aginet_fuzz_targets::delta_payload::run(data));
