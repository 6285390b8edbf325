//! `init` with no `--skill`, as a new user runs it after `ci/setup.sh`: on a models folder
//! holding the manifests, what the fetch scripts brought (Gemma 3 270M, MiniLM, the digits) and
//! the committed vision base, but none of the bases the project's tools make, it makes each
//! (the tiny model from its seed, the memory encoder from MiniLM, the language and planner
//! base from Gemma, once for both) and creates every skill.

use crate::common::{models, ok, server};
use std::path::Path;

/// A fresh models folder in `dir`: every skill's manifest, the committed vision base, and
/// links to the fetched sources.
fn fresh_models(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("models");
    for skill in ["tiny", "language", "vision", "memory", "planner"] {
        std::fs::create_dir_all(out.join(skill)).unwrap();
        let manifest = models().join(skill).join("manifest.toml");
        std::fs::copy(manifest, out.join(skill).join("manifest.toml")).unwrap();
    }
    std::fs::copy(
        models().join("vision/digits-mlp-q8_0.gguf"),
        out.join("vision/digits-mlp-q8_0.gguf"),
    )
    .unwrap();
    for fetched in ["gemma3-270m", "minilm", "digits"] {
        std::os::unix::fs::symlink(models().join(fetched), out.join(fetched)).unwrap();
    }
    out
}

#[test]
fn init_with_no_skill_makes_every_base_and_creates_every_skill() {
    let dir = tempfile::tempdir().unwrap();
    let models = fresh_models(dir.path());
    assert!(!models.join("language/gemma3-270m-q8.gguf").exists());
    let project = dir.path().join("project");
    let out = server(&[
        "init",
        "--project",
        project.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
    ]);
    ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    for skill in ["tiny", "language", "vision", "memory", "planner"] {
        let base = project.join("skills").join(skill).join("base.gguf");
        assert!(base.exists(), "{} missing; log:\n{log}", base.display());
    }
    assert_eq!(
        log.matches("making its base").count(),
        1,
        "Gemma is converted once, for language and planner both:\n{log}"
    );
    assert!(models.join("language/gemma3-270m-q8.gguf").exists());
}

#[test]
fn init_names_the_fetch_script_when_gemma_itself_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(models.join("language")).unwrap();
    std::fs::copy(
        crate::common::models().join("language/manifest.toml"),
        models.join("language/manifest.toml"),
    )
    .unwrap();
    let out = server(&[
        "init",
        "--project",
        dir.path().join("project").to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gemma3-270m/gemma-3-270m-q4_k_m.gguf")
            && err.contains("models/gemma3-270m/fetch.sh"),
        "{err}"
    );
}
