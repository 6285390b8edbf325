//! Helpers of the benchmarks that drive the release binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The release `aginet` app, built beside `aginet-server`.
pub fn app() -> PathBuf {
    let app = Path::new(env!("CARGO_BIN_EXE_aginet-server")).with_file_name("aginet");
    assert!(
        app.exists(),
        "{} is missing: cargo build --release --workspace",
        app.display()
    );
    app
}

/// Runs `cmd`; its stdout, or a panic with its output.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the command starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
