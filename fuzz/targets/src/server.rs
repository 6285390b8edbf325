//! What the fuzz targets share: a tiny agiNet project made once per fuzzing process (the
//! server's side of `validate`), the files a target hands to the code under test, and the
//! verdict rule for the server (valid, or invalid with a reason; anything else is a finding).

use aginet::format::config::WorkConfig;
use aginet::format::files::sha256_hex;
use aginet_server::project::Project;
use aginet_server::scorers::Scorers;
use aginet_server::validate::{validate, Verdict};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// zstd level the targets compress with: the format takes any level, and a fast one keeps the
/// fuzzer's executions per second up.
const LEVEL: i32 = 1;

/// `bytes` as one zstd frame, as the app writes a delta (so every input is a valid frame).
pub fn compress(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, LEVEL).expect("zstd compresses any bytes")
}

/// The models folder of this checkout (the tiny skill's manifest).
fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// The server's state for the validate targets: a tiny project with one work unit made (so its
/// eval split is on record), its scorers, and a folder for each input's files.
pub struct Server {
    /// The project.
    pub project: Project,
    /// The validator's loaded models, kept across inputs as the resident validator keeps them.
    pub scorers: Scorers,
    /// Where an input's result files are written.
    pub scratch: PathBuf,
    /// The seed (number) of the work unit `make-work` made, whose eval split the project keeps.
    pub seed: u64,
}

/// Runs `f` with the process's tiny project, made on first use under the temporary folder (one
/// per thread: the validator's models are not shared across threads, and libFuzzer runs one).
pub fn with_server<T>(f: impl FnOnce(&mut Server) -> T) -> T {
    thread_local! {
        static SERVER: RefCell<Option<Server>> = const { RefCell::new(None) };
    }
    SERVER.with(|cell| f(cell.borrow_mut().get_or_insert_with(Server::new)))
}

impl Server {
    /// A tiny project in a new temporary folder (kept: the process ends without dropping it).
    fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("aginet-fuzz-")
            .tempdir()
            .expect("a temporary folder")
            .keep();
        let project =
            aginet_server::init::init(&root.join("project"), &models(), &["tiny".into()], 0)
                .expect("the tiny project initialises");
        let made = aginet_server::make_work::make_work(&project, "tiny", 1, &root.join("made"))
            .expect("make-work makes a work unit");
        let scratch = root.join("result");
        std::fs::create_dir_all(&scratch).expect("scratch folder");
        Self {
            project,
            scorers: Scorers::new(),
            scratch,
            seed: WorkConfig::read(&made[0].join("config"))
                .expect("make-work writes a config")
                .seed,
        }
    }

    /// Validates the result `delta` (the file's bytes) with `report` (the file's bytes), as
    /// BOINC's validator would. Panics (a finding) on any outcome but a verdict: an `Err` is
    /// "try again later" to BOINC, which never ends for bytes that always fail so.
    pub fn validate(&mut self, delta: &[u8], report: &[u8]) -> Verdict {
        let delta_path = self.scratch.join("delta");
        let report_path = self.scratch.join("report");
        std::fs::write(&delta_path, delta).expect("scratch write");
        std::fs::write(&report_path, report).expect("scratch write");
        let verdict = validate(&self.project, &mut self.scorers, &[delta_path, report_path])
            .unwrap_or_else(|e| panic!("validate failed on a volunteer's bytes: {e:#}"));
        if let Verdict::Valid { .. } = verdict {
            // Each accepted input leaves its verdict file; keep the folder from filling.
            let _ = std::fs::remove_file(self.project.verdict(&sha256_hex(delta)));
        }
        if let Verdict::Invalid(reason) = &verdict {
            assert!(
                !reason.trim().is_empty(),
                "an invalid verdict without a reason"
            );
        }
        verdict
    }
}

/// `report` (JSON) with its `delta_sha256` set to the sha256 of `delta`, so that an input
/// reaches the checks after the hash; bytes that are no JSON object are returned as they are.
pub fn with_delta_sha(report: &[u8], delta: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(report) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.insert("delta_sha256".into(), sha256_hex(delta).into());
            serde_json::to_vec(&fields).expect("JSON serializes")
        }
        _ => report.to_vec(),
    }
}
