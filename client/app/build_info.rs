//! What this binary is, for its start line and each report's `app_version`: the package version,
//! the commit it was built from and the BOINC app API it speaks (the package's `build.rs`).

/// `<version> (<commit>, <BOINC API>)`, e.g. `0.1.0 (commit 2c75013a1b2c, BOINC API 8.3.0
/// bundled)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("AGINET_BUILD"), ")");
