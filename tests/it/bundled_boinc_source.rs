//! The `-sys` crate's `bundled` build refuses a BOINC source it cannot trust, with one line
//! naming the path and the problem: `BOINC_SRC` naming a folder that is no BOINC tree, and a
//! tarball whose sha256 is not the pinned one. (The good path is every static FFI test.)

use std::path::Path;
use std::process::Command;

/// `cargo build -p boinc-api-sys --features bundled` with `vars` set; its stderr.
fn build_bundled(vars: &[(&str, &Path)]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "boinc-api-sys",
        "--features",
        "bundled",
    ])
    // Its own target folder: the outer test run's may be locked, and this one's build
    // script must run afresh.
    .arg("--target-dir")
    .arg(root.join("target/bundled-refusals"))
    .current_dir(root)
    .env_remove("BOINC_SRC")
    .env_remove("BOINC_TARBALL")
    .env_remove("RUSTFLAGS");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(!out.status.success(), "the build must fail with {vars:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_bundled_build_refuses_a_foreign_tree_and_a_forged_tarball() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = build_bundled(&[("BOINC_SRC", dir.path())]);
    let want = format!(
        "error: boinc-api-sys (bundled): BOINC_SRC={}: no api/boinc_api.h there; not a BOINC source tree",
        dir.path().display()
    );
    assert!(stderr.contains(&want), "{stderr}");

    let forged = dir.path().join("boinc-server_release-1.6.2.tar.zst");
    std::fs::write(&forged, b"not BOINC").unwrap();
    let stderr = build_bundled(&[("BOINC_TARBALL", &forged)]);
    // sha256 of "not BOINC".
    let want = format!(
        "error: boinc-api-sys (bundled): {}: sha256 \
         d680f687b6b9460c80e99e5154de1d721d55003d37ebd14b6f2fdcdc9c54c73f, \
         expected b4b5538614c779a47f5dee9dd0ead31e89d0ca9899d494f1090c6cb4a0103a46",
        forged.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
}
