//! Any bytes as a returned `report`: the validator's reader returns a report or a message.

/// Runs one input.
pub fn run(data: &[u8]) {
    let _ = aginet::format::report::Report::from_bytes(data);
}
