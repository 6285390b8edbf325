//! The volunteer app's self-contained build for each platform (`ci/build-static.sh --ffi
//! --target …`, on first use), run here: Linux x86_64 natively, Windows x86_64 under Wine,
//! Linux aarch64 under qemu's user mode. Shared by the tests and `benches/platforms.rs`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A platform whose app version this machine builds and can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// `x86_64-pc-linux-gnu`: the static build this machine runs itself.
    LinuxX86_64,
    /// `windows_x86_64`: the MinGW build, under Debian's Wine.
    Windows,
    /// `aarch64-unknown-linux-gnu`: the static cross build, under `qemu-aarch64-static`.
    LinuxAarch64,
}

/// The repository's root.
fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

impl Platform {
    /// The Rust target triple the app is built for.
    pub fn triple(self) -> &'static str {
        match self {
            Platform::LinuxX86_64 => "x86_64-unknown-linux-gnu",
            Platform::Windows => "x86_64-pc-windows-gnu",
            Platform::LinuxAarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The release binary of the app version, built once per test run.
    pub fn binary(self) -> PathBuf {
        static X86_64: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        static WINDOWS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        static AARCH64: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        let cell = match self {
            Platform::LinuxX86_64 => &X86_64,
            Platform::Windows => &WINDOWS,
            Platform::LinuxAarch64 => &AARCH64,
        };
        cell.get_or_init(|| run_script("build-static.sh", &["--ffi", "--target", self.triple()]))
            .clone()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A command that runs the app with `args` (paths in them given by [`Platform::path`]).
    pub fn command(self, args: &[OsString]) -> Command {
        let mut cmd = match self {
            Platform::LinuxX86_64 => return with_args(Command::new(self.binary()), args),
            Platform::Windows => {
                let mut cmd = Command::new(wine());
                cmd.env("WINEPREFIX", wine_prefix())
                    .env("WINEDEBUG", "-all")
                    .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
                cmd
            }
            Platform::LinuxAarch64 => Command::new("qemu-aarch64-static"),
        };
        cmd.arg(self.binary());
        with_args(cmd, args)
    }

    /// `path` as the app sees it: Wine's drive `Z:` is the Unix root.
    pub fn path(self, path: &Path) -> OsString {
        match self {
            Platform::Windows => format!("Z:{}", path.display()).replace('/', "\\").into(),
            Platform::LinuxX86_64 | Platform::LinuxAarch64 => path.into(),
        }
    }
}

fn with_args(mut cmd: Command, args: &[OsString]) -> Command {
    cmd.args(args);
    cmd
}

/// Debian's wine64 loader (not on PATH without the `wine` wrapper package).
fn wine() -> PathBuf {
    let debian = PathBuf::from("/usr/lib/wine/wine64");
    if debian.exists() {
        debian
    } else {
        PathBuf::from("wine64")
    }
}

/// The tests' Wine prefix, made once by `ci/wine-prefix.sh`.
fn wine_prefix() -> PathBuf {
    static PREFIX: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PREFIX
        .get_or_init(|| run_script("wine-prefix.sh", &[]))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `ci/SCRIPT ARGS` from the repository's root; the path it prints last.
fn run_script(script: &str, args: &[&str]) -> Result<PathBuf, String> {
    let out = Command::new(root().join("ci").join(script))
        .args(args)
        .current_dir(root())
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|e| format!("cannot run ci/{script}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "ci/{script} {args:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = root().join(stdout.lines().last().unwrap_or_default().trim());
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "ci/{script} {args:?} printed {stdout:?}, not a path"
        ))
    }
}
