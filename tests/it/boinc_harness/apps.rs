//! The two builds of the volunteer app the end-to-end tests run: the FFI build (this test
//! binary's `aginet`, linked to Debian's `libboinc_api`) and the fully static build
//! (`ci/build-static.sh`: the protocol in Rust, no dynamic section), built once per test run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One build of the app and what the client needs beside it.
#[derive(Clone, Debug)]
pub struct AppBuild {
    /// Short name for messages.
    pub name: &'static str,
    /// The executable.
    pub path: PathBuf,
    /// Files it needs in the app version (the FFI build's shared BOINC libraries).
    pub extra_files: Vec<PathBuf>,
}

/// The FFI build: the `aginet` binary of this test run, with Debian's BOINC API libraries.
pub fn ffi_build() -> AppBuild {
    AppBuild {
        name: "ffi",
        path: PathBuf::from(env!("CARGO_BIN_EXE_aginet")),
        extra_files: super::boinc_api_libs(),
    }
}

/// The static release build, made by `ci/build-static.sh` on first use (a few minutes the first
/// time, seconds after); nothing ships beside it.
pub fn static_build() -> AppBuild {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let path = BUILT
        .get_or_init(build_static)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"));
    AppBuild {
        name: "static",
        path,
        extra_files: Vec::new(),
    }
}

fn build_static() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("ci/build-static.sh"))
        .arg("release")
        .current_dir(root)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|e| format!("cannot run ci/build-static.sh: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "ci/build-static.sh failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = root.join(stdout.lines().last().unwrap_or_default().trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "ci/build-static.sh printed {stdout:?}, not the binary's path"
        ))
    }
}
