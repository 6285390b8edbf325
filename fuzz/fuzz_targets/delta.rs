//! Any bytes as a returned `delta`: the validator's reader must reject them cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = aginet::format::delta::Delta::from_bytes(data);
});
