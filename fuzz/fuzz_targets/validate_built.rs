//! The `validate_built` target: `aginet_fuzz_targets::validate_built` on a structured input.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: aginet_fuzz_targets::validate_built::Input| {
    aginet_fuzz_targets::validate_built::run(input)
});
