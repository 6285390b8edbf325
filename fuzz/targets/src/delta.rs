//! Any bytes as a returned `delta`: the validator's reader must reject them cleanly.

/// Runs one input.
pub fn run(data: &[u8]) {
    let _ = aginet::format::delta::Delta::from_bytes(data);
}
