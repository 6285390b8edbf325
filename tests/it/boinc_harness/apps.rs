//! The three builds of the volunteer app the end-to-end tests run: the FFI build (this test
//! binary's `aginet`, linked to Debian's `libboinc_api`) and the two fully static builds
//! (`ci/build-static.sh`: the protocol in Rust; `--ffi`: BOINC's own app API compiled from
//! BOINC's source), each built once per test run. The static ones have no dynamic section.

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
    /// What its start line and its reports' `app_version` say of the BOINC API it speaks.
    pub api: &'static str,
}

/// The FFI build: the `aginet` binary of this test run, with Debian's BOINC API libraries.
pub fn ffi_build() -> AppBuild {
    AppBuild {
        name: "ffi",
        path: PathBuf::from(env!("CARGO_BIN_EXE_aginet")),
        extra_files: super::boinc_api_libs(),
        api: "BOINC API 7.20.5)",
    }
}

/// The static release build, made by `ci/build-static.sh` on first use (a few minutes the first
/// time, seconds after); nothing ships beside it.
pub fn static_build() -> AppBuild {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    AppBuild {
        name: "static",
        path: built(&BUILT, &[]),
        extra_files: Vec::new(),
        api: "BOINC protocol in Rust)",
    }
}

/// The static FFI release build, `ci/build-static.sh --ffi`: BOINC's own app API, compiled from
/// its source, and the C++ runtime inside; nothing ships beside it.
pub fn static_ffi_build() -> AppBuild {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    AppBuild {
        name: "static-ffi",
        path: built(&BUILT, &["--ffi"]),
        extra_files: Vec::new(),
        api: "BOINC API 8.3.0 bundled)",
    }
}

/// The binary `ci/build-static.sh FLAGS release` makes, built once per test run.
fn built(cell: &OnceLock<Result<PathBuf, String>>, flags: &[&str]) -> PathBuf {
    cell.get_or_init(|| build_static(flags))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn build_static(flags: &[&str]) -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("ci/build-static.sh"))
        .args(flags)
        .arg("release")
        .current_dir(root)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|e| format!("cannot run ci/build-static.sh: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "ci/build-static.sh {flags:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = root.join(stdout.lines().last().unwrap_or_default().trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "ci/build-static.sh {flags:?} printed {stdout:?}, not the binary's path"
        ))
    }
}
