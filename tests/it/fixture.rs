//! A work-unit folder in a temp dir with the tiny model, its data and a config; on a failing
//! test it lists its files and prints the app's stderr so the failure explains itself.

use aginet::format::config::WorkConfig;
use aginet::format::files;
use aginet::format::manifest::Manifest;
use aginet::nn::model::tiny::{tiny_model_bytes, TinyQuant};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's `models/` folder.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The language skill's Gemma 3 270M base, which `models/gemma3-270m/fetch.sh` (run by
/// `ci/setup.sh`) assembles; the test fails with that hint when it is missing.
pub fn gemma_base() -> PathBuf {
    let path = models_dir().join("gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    assert!(
        path.exists(),
        "{} is missing: run models/gemma3-270m/fetch.sh (ci/setup.sh does)",
        path.display()
    );
    path
}

/// The tiny skill's manifest.
pub fn tiny_manifest() -> Manifest {
    Manifest::load(&models_dir(), "tiny").expect("models/tiny/manifest.toml loads")
}

/// A temporary work-unit folder.
pub struct WorkDir {
    pub dir: tempfile::TempDir,
}

impl WorkDir {
    /// A folder with the tiny Q8_0 model, 64 reverse examples (8 eval) and the manifest's
    /// config with `steps` steps.
    pub fn tiny(steps: u32) -> Self {
        Self::tiny_batch(steps, None)
    }

    /// [`WorkDir::tiny`] with another batch size where `batch` says so, for a test that needs
    /// slower steps.
    pub fn tiny_batch(steps: u32, batch: Option<usize>) -> Self {
        let wd = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let model = tiny_model_bytes(0, TinyQuant::Q8_0).expect("tiny model");
        std::fs::write(wd.path("model"), &model).unwrap();
        std::fs::write(wd.path("data"), aginet::task::reverse_jsonl(5, 64, 8)).unwrap();
        let mut config = tiny_manifest().work_config(11, 0);
        config.steps = steps;
        if let Some(b) = batch {
            config.hyper.batch_size = b;
        }
        wd.write_config(&config);
        wd
    }

    /// Path of `name` inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The current config.
    pub fn config(&self) -> WorkConfig {
        WorkConfig::read(&self.path("config")).expect("config reads")
    }

    /// Replaces the config.
    pub fn write_config(&self, config: &WorkConfig) {
        std::fs::write(self.path("config"), config.to_json()).unwrap();
    }

    /// Points the config at whatever `model` now holds.
    pub fn pin_model_sha(&self) {
        let mut c = self.config();
        c.base_sha256 = files::sha256_file(&self.path("model")).unwrap();
        self.write_config(&c);
    }

    /// Bytes of a file in the folder.
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name))
            .unwrap_or_else(|e| panic!("{name}: {e}; folder holds {:?}", self.listing()))
    }

    /// Names and sizes of the folder's files.
    pub fn listing(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().map(|m| m.len()).unwrap_or(0),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// `aginet run --dir <folder>` plus `args`.
    pub fn run_app(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_aginet"))
            .arg("run")
            .arg("--dir")
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("aginet runs")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "work dir {} held: {:?}",
                self.dir.path().display(),
                self.listing()
            );
        }
    }
}

/// stderr of a finished process as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that `tok` encodes every `{"text", "ids"}` of the reference `vectors` (made by an
/// independent tokenizer) to exactly those ids; there must be at least `min` of them.
pub fn assert_encodes_like(
    tok: &dyn aginet::text::tokenizer::Tokenizer,
    vectors: &serde_json::Value,
    min: usize,
) {
    let vectors = vectors.as_array().expect("an array of vectors");
    assert!(vectors.len() >= min, "{} vectors", vectors.len());
    for v in vectors {
        let text = v["text"].as_str().unwrap();
        let want: Vec<u32> = v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text), want, "{text:?}");
    }
}
