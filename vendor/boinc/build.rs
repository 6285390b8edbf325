//! Builds the bindings to BOINC's app API and decides how to link it.
//!
//! | situation                                        | action                                    |
//! |--------------------------------------------------|-------------------------------------------|
//! | `libboinc_api.a` defines `boinc_init`            | link `boinc_api` and `boinc` statically   |
//! | `libboinc_api.a` is a stub (Debian) or missing   | link the shared libraries, with a warning |
//!
//! Headers come from `BOINC_INCLUDE_DIR` (default `/usr/include/boinc`, Debian's
//! `libboinc-app-dev`), libraries from `BOINC_LIB_DIR` (default the target's multiarch folder
//! under `/usr/lib`). bindgen needs libclang (`libclang-dev`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BOINC_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=BOINC_LIB_DIR");
    println!("cargo:rerun-if-changed=shim");
    let include =
        env_path("BOINC_INCLUDE_DIR").unwrap_or_else(|| PathBuf::from("/usr/include/boinc"));
    let lib_dir = env_path("BOINC_LIB_DIR").unwrap_or_else(default_lib_dir);
    if !include.join("boinc_api.h").exists() {
        panic!(
            "boinc_api.h not found in {}: install libboinc-app-dev (ci/setup.sh) or set BOINC_INCLUDE_DIR",
            include.display()
        );
    }

    cc::Build::new()
        .cpp(true)
        .file("shim/shim.cpp")
        .include(&include)
        .include("shim")
        .flag_if_supported("-std=c++11")
        .warnings(false)
        .compile("aginet_boinc_shim");

    link(&lib_dir);
    generate_bindings(&include);
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
        println!("cargo:rustc-link-lib=dylib=stdc++");
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

fn generate_bindings(include: &Path) {
    let bindings = bindgen::Builder::default()
        .header("shim/wrapper.hpp")
        .clang_args(["-x", "c++", "-std=c++11"])
        .clang_arg(format!("-I{}", include.display()))
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
