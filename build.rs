//! The app package's build script: its build metadata, the one string that says what this
//! binary is (`AGINET_BUILD`, read by `aginet::app::build_info`): the git commit it was built from
//! and the BOINC app API it speaks:
//!
//! | features                      | BOINC API                                             |
//! |-------------------------------|-------------------------------------------------------|
//! | `boinc-native`                | `BOINC protocol in Rust`                              |
//! | `boinc` (`boinc-api-sys`)     | `BOINC API <version>` from the headers it was built with, `bundled` when compiled from BOINC's source |
//! | neither (the server's copy)   | `no BOINC API`                                         |
//!
//! How BOINC's API is compiled and linked is `boinc-api-sys`'s job (`vendor/boinc/build.rs`),
//! which reports its version and origin through its `links` metadata.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = commit().unwrap_or_else(|| "unknown commit".into());
    let api = if std::env::var_os("CARGO_FEATURE_BOINC_NATIVE").is_some() {
        "BOINC protocol in Rust".to_string()
    } else if let Ok(version) = std::env::var("DEP_BOINC_API_API_VERSION") {
        let origin = std::env::var("DEP_BOINC_API_ORIGIN").unwrap_or_default();
        format!("BOINC API {version} {origin}")
            .trim_end()
            .to_string()
    } else {
        "no BOINC API".to_string()
    };
    println!("cargo:rustc-env=AGINET_BUILD={commit}, {api}");
}

/// The short commit of the checkout, when this is one (a source package is not).
fn commit() -> Option<String> {
    let git = Path::new(".git");
    if !git.exists() {
        return None;
    }
    println!("cargo:rerun-if-changed=.git/HEAD");
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    if let Some(reference) = head.trim().strip_prefix("ref: ") {
        println!("cargo:rerun-if-changed=.git/{reference}");
    }
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| format!("commit {}", String::from_utf8_lossy(&out.stdout).trim()))
}
