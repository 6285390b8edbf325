//! Builds the bindings to BOINC's app API and decides how to link it.
//!
//! | situation                                        | action                                    |
//! |--------------------------------------------------|-------------------------------------------|
//! | feature `bundled`                                | compile BOINC's source (`build/bundled.rs`) into static archives and link them |
//! | `libboinc_api.a` defines `boinc_init`            | link `boinc_api` and `boinc` statically   |
//! | `libboinc_api.a` is a stub (Debian) or missing   | link the shared libraries, with a warning |
//!
//! Without `bundled`, headers come from `BOINC_INCLUDE_DIR` (default `/usr/include/boinc`,
//! Debian's `libboinc-app-dev`), libraries from `BOINC_LIB_DIR` (default the target's multiarch
//! folder under `/usr/lib`). bindgen needs libclang (`libclang-dev`).

#[path = "build/bundled.rs"]
mod bundled;

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BOINC_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=BOINC_LIB_DIR");
    println!("cargo:rerun-if-env-changed=BOINC_SRC");
    println!("cargo:rerun-if-env-changed=BOINC_TARBALL");
    println!("cargo:rerun-if-changed=shim");
    println!("cargo:rerun-if-changed=build");
    let headers = if cfg!(feature = "bundled") {
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        bundled::build(&out)
    } else {
        let include =
            env_path("BOINC_INCLUDE_DIR").unwrap_or_else(|| PathBuf::from("/usr/include/boinc"));
        if !include.join("boinc_api.h").exists() {
            panic!(
                "boinc_api.h not found in {}: install libboinc-app-dev (ci/setup.sh) or set BOINC_INCLUDE_DIR",
                include.display()
            );
        }
        Headers {
            includes: vec![include],
            defines: &[],
            prelude: None,
        }
    };

    let mut shim = cc::Build::new();
    shim.cpp(true).file("shim/shim.cpp");
    headers.configure(&mut shim);
    shim.include("shim")
        .flag_if_supported("-std=c++11")
        .warnings(false)
        .cpp_link_stdlib(None)
        .compile("aginet_boinc_shim");

    if !cfg!(feature = "bundled") {
        link(&env_path("BOINC_LIB_DIR").unwrap_or_else(default_lib_dir));
    }
    // For the app's build metadata (DEP_BOINC_API_API_VERSION, DEP_BOINC_API_ORIGIN).
    let version = headers
        .includes
        .iter()
        .find_map(|i| boinc_version(&i.join("version.h")))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:api_version={version}");
    println!(
        "cargo:origin={}",
        if cfg!(feature = "bundled") {
            "bundled"
        } else {
            ""
        }
    );
    link_cpp_runtime();
    generate_bindings(&headers);
}

/// How every C++ compile against BOINC's headers sees them (BOINC's own archives, the shim and
/// bindgen's parse alike, so that all agree on the layout of `APP_INIT_DATA` and the rest).
pub struct Headers {
    /// Include folders, in order.
    pub includes: Vec<PathBuf>,
    /// Macros and their values (`None`: defined empty).
    pub defines: &'static [(&'static str, Option<&'static str>)],
    /// A header included before each file (`-include`), as BOINC's MinGW makefile does.
    pub prelude: Option<PathBuf>,
}

impl Headers {
    /// Adds the folders, macros and prelude to a `cc` build.
    fn configure(&self, build: &mut cc::Build) {
        build.includes(&self.includes);
        for (name, value) in self.defines {
            build.define(name, *value);
        }
        if let Some(prelude) = &self.prelude {
            build
                .flag("-include")
                .flag(prelude.to_string_lossy().as_ref());
        }
    }

    /// The same for clang's command line (bindgen).
    fn clang_args(&self) -> Vec<String> {
        let includes = self.includes.iter().map(|i| format!("-I{}", i.display()));
        let defines = self.defines.iter().map(|(name, value)| match value {
            Some(v) => format!("-D{name}={v}"),
            None => format!("-D{name}"),
        });
        let prelude = self
            .prelude
            .iter()
            .flat_map(|p| ["-include".to_string(), p.display().to_string()]);
        includes.chain(defines).chain(prelude).collect()
    }
}

/// `BOINC_VERSION_STRING` of a BOINC `version.h`, if it is one.
fn boinc_version(version_h: &Path) -> Option<String> {
    std::fs::read_to_string(version_h)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("#define BOINC_VERSION_STRING "))
        .map(|v| v.trim().trim_matches('"').to_string())
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `/usr/lib/<multiarch>` for the target, e.g. `/usr/lib/x86_64-linux-gnu`.
fn default_lib_dir() -> PathBuf {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    PathBuf::from(format!("/usr/lib/{arch}-{os}-{env}"))
}

/// Links static archives when they are complete, else the shared libraries.
fn link(lib_dir: &Path) {
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    let archive = lib_dir.join("libboinc_api.a");
    if archive_defines(&archive, "boinc_init") {
        println!("cargo:rustc-link-lib=static=boinc_api");
        println!("cargo:rustc-link-lib=static=boinc");
    } else {
        println!(
            "cargo:warning={} is missing or an empty stub (Debian's is): linking libboinc_api.so and \
             libboinc.so dynamically; ship libboinc_api.so.7 and libboinc.so.7 with the app version",
            archive.display()
        );
        println!("cargo:rustc-link-lib=dylib=boinc_api");
        println!("cargo:rustc-link-lib=dylib=boinc");
    }
}

/// Links the C++ runtime BOINC's code needs (the `cc` builds link none themselves). Under
/// crt-static (the fully static app) and always for Windows with MinGW (whose app ships as one
/// .exe; rustc ignores crt-static there) its archive, passed to the linker as it is (`-bundle`:
/// it lives in the C++ compiler's own folder, which the linker driver knows and rustc does
/// not); otherwise the shared library, as for any C++ dependency.
fn link_cpp_runtime() {
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let mingw = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "windows")
        && std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "gnu");
    if mingw || features.split(',').any(|f| f == "crt-static") {
        println!("cargo:rustc-link-lib=static:-bundle=stdc++");
    } else {
        println!("cargo:rustc-link-lib=dylib=stdc++");
    }
}

/// When cross-compiling: the C++ standard library's header folders of the C++ compiler that
/// builds the shim (asked with `-v`), so that bindgen's clang parses the same `<string>` and
/// `<vector>` for the target. clang alone misses them for MinGW (Debian keeps them under
/// `12-posix`/`12-win32`, which it does not look for). The compiler's own intrinsics folder
/// is left out: clang has its own. Empty for a native build.
fn cross_cxx_includes() -> Vec<PathBuf> {
    if std::env::var("TARGET").ok() == std::env::var("HOST").ok() {
        return Vec::new();
    }
    let compiler = cc::Build::new().cpp(true).get_compiler();
    let out = Command::new(compiler.path())
        .args(["-E", "-x", "c++", "-", "-v"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {} -v: {e}", compiler.path().display()));
    let log = String::from_utf8_lossy(&out.stderr);
    log.lines()
        .skip_while(|l| !l.starts_with("#include <...> search starts here:"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .map(|l| PathBuf::from(l.trim()))
        .filter(|p| p.components().any(|c| c.as_os_str() == "c++"))
        .collect()
}

/// Whether the archive at `path` defines the global symbol `symbol` (checked with `nm`).
fn archive_defines(path: &Path, symbol: &str) -> bool {
    if !path.exists() {
        return false;
    }
    let out = Command::new(std::env::var("NM").unwrap_or_else(|_| "nm".into()))
        .args(["-g", "--defined-only"])
        .arg(path)
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.split_whitespace().last() == Some(symbol)),
        Err(e) => {
            println!(
                "cargo:warning=could not run nm on {}: {e}; assuming a stub",
                path.display()
            );
            false
        }
    }
}

fn generate_bindings(headers: &Headers) {
    let bindings = bindgen::Builder::default()
        .header("shim/wrapper.hpp")
        .clang_args(["-x", "c++", "-std=c++11"])
        .clang_args(headers.clang_args())
        .clang_args(
            cross_cxx_includes()
                .iter()
                .map(|i| format!("-isystem{}", i.display())),
        )
        .clang_arg("-Ishim")
        .allowlist_function("boinc_(init_options|finish|fraction_done|time_to_checkpoint|checkpoint_completed|resolve_filename|get_status|is_standalone|begin_critical_section|end_critical_section)")
        .allowlist_function("aginet_boinc_.*")
        .allowlist_type("BOINC_OPTIONS|BOINC_STATUS|AGINET_INIT_DATA")
        .layout_tests(false)
        .derive_default(true)
        .generate()
        .expect("bindgen could not generate the BOINC bindings (is libclang-dev installed?)");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(out).expect("writing bindings.rs");
}
