//! The `bundled` feature: BOINC's app API compiled from BOINC's own source, as `libsqlite3-sys`
//! bundles SQLite, into two static archives (`boinc_api` from `api/`, `boinc` from `lib/`).
//!
//! The tree comes from `BOINC_SRC` (a folder), else from the pinned tarball
//! (`BOINC_TARBALL`, default `../shared/boinc/boinc-server_release-1.6.2.tar.zst` beside the
//! workspace), checked against its sha256 and unpacked once into `OUT_DIR`. BOINC's code is a
//! dependency fetched and checked like a crate, never part of this repository. No configure
//! step: a `config.h` written here carries the few feature macros the compiled files test, with
//! the values BOINC's configure chooses on Linux with glibc.

use super::Headers;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The tarball's sha256 (`../shared/boinc/SHA256SUMS`): BOINC's tag
/// `server_release/1.6/1.6.2`, commit 679b7c89d0db3b0f1c190c53686dbb508a9b13be.
const TARBALL_SHA256: &str = "b4b5538614c779a47f5dee9dd0ead31e89d0ca9899d494f1090c6cb4a0103a46";
/// The tarball's name, and the folder it unpacks into.
const TARBALL_NAME: &str = "boinc-server_release-1.6.2";

/// The app API's own sources (`api/`).
const API_FILES: &[&str] = &["boinc_api.cpp"];
/// What the app API needs of `lib/` on Linux: found by linking a static probe of every call the
/// shim and the bindings make. `APP_INIT_DATA` holds host info, preferences, proxy settings and
/// coprocessors, which is why `hostinfo`, `prefs`, `proxy_info`, `coproc` and `opencl_boinc`
/// are here. No file needs OpenSSL, curl or a graphics library.
const LINUX_LIB_FILES: &[&str] = &[
    "app_ipc.cpp",
    "coproc.cpp",
    "diagnostics.cpp",
    "filesys.cpp",
    "hostinfo.cpp",
    "mfile.cpp",
    "miofile.cpp",
    "opencl_boinc.cpp",
    "parse.cpp",
    "prefs.cpp",
    "proc_control.cpp",
    "procinfo.cpp",
    "procinfo_unix.cpp",
    "proxy_info.cpp",
    "shmem.cpp",
    "str_util.cpp",
    "url.cpp",
    "util.cpp",
];

/// The feature macros the Linux files test, as BOINC's configure sets them on Linux and glibc
/// (any architecture). Left out on purpose: `HAVE_STRLCPY`/`HAVE_STRLCAT` (glibc before 2.38
/// has neither; `str_util.cpp` supplies them). A missing macro can change behaviour silently
/// (without `HAVE_SIGACTION` no crash handler is installed), so the list is exactly configure's.
const LINUX_CONFIG_MACROS: &[&str] = &[
    "HAVE_DLFCN_H",
    "HAVE_EXECINFO_H",
    "HAVE_FTOK",
    "HAVE_SIGACTION",
    "HAVE_SIGNAL_H",
    "HAVE_STRCASECMP",
    "HAVE_STRCASESTR",
    "HAVE_STRTOULL",
    "HAVE_SYS_IPC_H",
    "HAVE_SYS_MOUNT_H",
    "HAVE_SYS_PARAM_H",
    "HAVE_SYS_RESOURCE_H",
    "HAVE_SYS_SHM_H",
    "HAVE_SYS_STATFS_H",
    "HAVE_SYS_STATVFS_H",
    "HAVE_UNISTD_H",
];

/// `lib/` for Windows with MinGW: `lib/Makefile.mingw`'s `LIB_OBJ`, BOINC's own list for this
/// compiler (the linker takes only the objects the app reaches).
const WINDOWS_LIB_FILES: &[&str] = &[
    "app_ipc.cpp",
    "base64.cpp",
    "coproc.cpp",
    "diagnostics.cpp",
    "diagnostics_win.cpp",
    "filesys.cpp",
    "hostinfo.cpp",
    "md5.cpp",
    "md5_file.cpp",
    "mem_usage.cpp",
    "mfile.cpp",
    "miofile.cpp",
    "opencl_boinc.cpp",
    "procinfo_win.cpp",
    "procinfo.cpp",
    "proc_control.cpp",
    "parse.cpp",
    "prefs.cpp",
    "proxy_info.cpp",
    "str_util.cpp",
    "shmem.cpp",
    "stackwalker_win.cpp",
    "url.cpp",
    "util.cpp",
    "win_util.cpp",
    "wslinfo.cpp",
];

/// `Makefile.mingw`'s macros (`CCXXFLAGS`: `WINVERFLAGS`, `HAVEFLAGS` and the rest) with
/// their values; `version.h` is included first as there (`--include`).
const WINDOWS_DEFINES: &[(&str, Option<&str>)] = &[
    ("EINSTEINATHOME_CROSS_BUILD", None),
    ("MINGW_WIN32", None),
    ("HAVE_STRCASECMP", None),
    ("_WINDOWS", None),
    ("_WIN32", None),
    ("WIN32", None),
    ("WINVER", Some("0x0500")),
    ("_WIN32_WINNT", Some("0x0500")),
    ("_MT", None),
    ("BOINC", None),
    ("NODB", None),
    ("_CONSOLE", None),
    ("NDEBUG", None),
];

/// The Windows system libraries BOINC's code calls into (found by linking the app).
const WINDOWS_SYSTEM_LIBS: &[&str] = &[
    "advapi32", "shell32", "psapi", "ws2_32", "winmm", "userenv", "ole32", "oleaut32", "wbemuuid",
];

/// Stops the build with one line naming the path and the problem.
fn fail(message: String) -> ! {
    eprintln!("error: boinc-api-sys (bundled): {message}");
    std::process::exit(1);
}

/// Compiles the app API for the target (Linux with glibc, or Windows with MinGW); returns how
/// the shim and bindgen must see BOINC's headers (as the archives were compiled).
pub fn build(out_dir: &Path) -> Headers {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    match (os.as_str(), env.as_str()) {
        ("linux", "gnu") => build_linux(out_dir),
        ("windows", "gnu") => build_windows(out_dir),
        _ => fail(format!(
            "the bundled build knows Linux with glibc and Windows with MinGW, not {os:?}/{env:?}; \
             build BOINC's libraries for it and set BOINC_INCLUDE_DIR and BOINC_LIB_DIR"
        )),
    }
}

/// Linux: configure's choices written into a `config.h`, the files a static probe needs.
fn build_linux(out_dir: &Path) -> Headers {
    let root = source_tree(out_dir);
    let config = out_dir.join("boinc-config");
    write_config(&root, &config);
    let headers = Headers {
        includes: vec![config, root.join("lib"), root.join("api"), root.clone()],
        defines: &[],
        prelude: None,
    };
    compile(&root, &headers, LINUX_LIB_FILES);
    headers
}

/// Windows: `lib/Makefile.mingw`'s recipe (its file list, macros and include folders; BOINC's
/// `win_build/config.h` is empty, nothing is configured), and the system libraries to link.
fn build_windows(out_dir: &Path) -> Headers {
    let root = source_tree(out_dir);
    let headers = Headers {
        includes: ["", "db", "lib", "api", "zip", "win_build"]
            .iter()
            .map(|f| root.join(f))
            .collect(),
        defines: WINDOWS_DEFINES,
        prelude: Some(root.join("version.h")),
    };
    compile(&root, &headers, WINDOWS_LIB_FILES);
    for lib in WINDOWS_SYSTEM_LIBS {
        println!("cargo:rustc-link-lib={lib}");
    }
    headers
}

/// Compiles `api/`'s files into `boinc_api` and `lib_files` of `lib/` into `boinc`, both seeing
/// the headers as `headers` says.
fn compile(root: &Path, headers: &Headers, lib_files: &[&str]) {
    for (archive, folder, files) in [("boinc_api", "api", API_FILES), ("boinc", "lib", lib_files)] {
        let mut build = cc::Build::new();
        build.cpp(true).cpp_link_stdlib(None).warnings(false);
        headers.configure(&mut build);
        for file in files {
            build.file(root.join(folder).join(file));
        }
        build.compile(archive);
    }
}

/// The BOINC source tree: `BOINC_SRC`, or the pinned tarball unpacked into `out_dir`.
fn source_tree(out_dir: &Path) -> PathBuf {
    if let Some(src) = std::env::var_os("BOINC_SRC").filter(|v| !v.is_empty()) {
        let src = PathBuf::from(src);
        if !src.join("api/boinc_api.h").is_file() {
            fail(format!(
                "BOINC_SRC={}: no api/boinc_api.h there; not a BOINC source tree",
                src.display()
            ));
        }
        println!("cargo:rerun-if-changed={}", src.join("api").display());
        println!("cargo:rerun-if-changed={}", src.join("lib").display());
        return src;
    }
    let tarball = std::env::var_os("BOINC_TARBALL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/boinc")
                .join(format!("{TARBALL_NAME}.tar.zst"))
        });
    println!("cargo:rerun-if-changed={}", tarball.display());
    let unpacked = out_dir.join(TARBALL_NAME);
    let marker = out_dir.join(format!("{TARBALL_NAME}.sha256"));
    if std::fs::read_to_string(&marker).is_ok_and(|s| s == TARBALL_SHA256) {
        return unpacked;
    }
    let bytes = std::fs::read(&tarball).unwrap_or_else(|e| {
        fail(format!(
            "{}: {e}; set BOINC_SRC to a BOINC source tree or BOINC_TARBALL to the tarball \
             (git clone --depth 1 --branch server_release/1.6/1.6.2 https://github.com/BOINC/boinc)",
            tarball.display()
        ))
    });
    let sha = format!("{:x}", Sha256::digest(&bytes));
    if sha != TARBALL_SHA256 {
        fail(format!(
            "{}: sha256 {sha}, expected {TARBALL_SHA256}",
            tarball.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&unpacked);
    let status = Command::new("tar")
        .arg("--zstd")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(out_dir)
        .status()
        .unwrap_or_else(|e| fail(format!("{}: running tar: {e}", tarball.display())));
    if !status.success() || !unpacked.join("api/boinc_api.h").is_file() {
        fail(format!(
            "{}: tar --zstd -xf failed ({status}) or gave no {TARBALL_NAME}/api/boinc_api.h",
            tarball.display()
        ));
    }
    std::fs::write(&marker, TARBALL_SHA256)
        .unwrap_or_else(|e| fail(format!("{}: {e}", marker.display())));
    unpacked
}

/// Writes `config.h` into its own folder (the name is generic; it must not shadow another).
fn write_config(root: &Path, folder: &Path) {
    let version_h = root.join("version.h");
    let version = super::boinc_version(&version_h)
        .unwrap_or_else(|| fail(format!("{}: no BOINC_VERSION_STRING", version_h.display())));
    let mut config = String::from(
        "/* Written by boinc-api-sys's build script: configure's choices on Linux/glibc. */\n",
    );
    // boinc_api.cpp embeds "API_VERSION_" PACKAGE_VERSION in the app.
    config += &format!("#define PACKAGE_VERSION \"{version}\"\n");
    for m in LINUX_CONFIG_MACROS {
        config += &format!("#define {m} 1\n");
    }
    std::fs::create_dir_all(folder)
        .and_then(|()| std::fs::write(folder.join("config.h"), config))
        .unwrap_or_else(|e| fail(format!("{}: {e}", folder.display())));
}
