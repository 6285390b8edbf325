//! One volunteer's result through the validator, to the verdict: the input is the report's
//! JSON, a NUL byte, and the delta's decompressed bytes (what `fuzz/seeds.sh` writes from real
//! results). The target compresses the delta and points the report's `delta_sha256` at it,
//! so inputs get past the hash check to the delta's header, shapes, values and scoring on a
//! tiny project. Any outcome but "valid" or "invalid with a reason" is a finding.

/// Runs one input.
pub fn run(data: &[u8]) {
    let (report, payload) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let delta = crate::server::compress(payload);
    let report = crate::server::with_delta_sha(report, &delta);
    crate::server::with_server(|server| {
        server.validate(&delta, &report);
    });
}
