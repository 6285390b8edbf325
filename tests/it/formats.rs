//! Result and state files: round trips, and readers that reject unknown versions by name.

use super::fixture::{tiny_manifest, WorkDir};
use aginet::app::workunit::{self, WorkFiles};
use aginet::format::checkpoint::Checkpoint;
use aginet::format::config::WorkConfig;
use aginet::format::delta::Delta;
use aginet::format::report::Report;
use aginet::learn::train::{Control, Host, Unattended};

/// A finished tiny run of 3 steps.
fn finished() -> WorkDir {
    let wd = WorkDir::tiny(3);
    workunit::run(&WorkFiles::in_dir(wd.dir.path()), 2, &mut Unattended).unwrap();
    wd
}

#[test]
fn delta_round_trips_and_holds_only_trained_factors() {
    let wd = finished();
    let bytes = wd.read("delta");
    let delta = Delta::from_bytes(&bytes).unwrap();
    assert_eq!(
        delta.to_bytes().unwrap(),
        bytes,
        "decode then encode gives the same bytes"
    );
    assert_eq!(delta.header.steps, 3);
    assert_eq!(
        delta.tensors.len(),
        2 * 7,
        "B of 7 targets in 2 blocks; A is frozen"
    );
    assert!(delta.tensors.keys().all(|k| k.ends_with(".lora_b")));
    let norm: f32 = delta.tensors["blk.0.attn_q.lora_b"]
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(norm > 0.0, "training moved B");
}

#[test]
fn report_and_config_round_trip() {
    let wd = finished();
    let report = Report::read(&wd.path("report")).unwrap();
    let copy = wd.path("report2");
    report.write(&copy).unwrap();
    assert_eq!(Report::read(&copy).unwrap(), report);
    // What made it: this test's build (default features: Debian's BOINC API) and its commit.
    assert_eq!(report.app_version, aginet::app::build_info::VERSION);
    assert!(
        report
            .app_version
            .starts_with(&format!("{} (commit ", env!("CARGO_PKG_VERSION")))
            && report.app_version.ends_with(", BOINC API 7.20.5)"),
        "{}",
        report.app_version
    );
    let config = wd.config();
    assert_eq!(
        WorkConfig::parse(config.to_json().as_bytes()).unwrap(),
        config
    );
    assert_eq!(config, tiny_manifest().work_config(11, 0).with_steps(3));
}

trait WithSteps {
    fn with_steps(self, steps: u32) -> Self;
}
impl WithSteps for WorkConfig {
    fn with_steps(mut self, steps: u32) -> Self {
        self.steps = steps;
        self
    }
}

/// A host that checkpoints every step and stops after step 2.
struct StopAfterTwo(u32);
impl Host for StopAfterTwo {
    fn poll(&mut self) -> Control {
        if self.0 == 2 {
            Control::Stop
        } else {
            Control::Continue
        }
    }
    fn time_to_checkpoint(&mut self, step: u32) -> bool {
        self.0 = step;
        true
    }
    fn log(&mut self, _line: &str) {}
}

#[test]
fn checkpoint_round_trips() {
    let wd = WorkDir::tiny(4);
    workunit::run(&WorkFiles::in_dir(wd.dir.path()), 2, &mut StopAfterTwo(0)).unwrap();
    let ck = Checkpoint::read(&wd.path("checkpoint"))
        .unwrap()
        .expect("checkpoint of step 2");
    assert_eq!(ck.header.step, 2);
    ck.write(&wd.path("copy")).unwrap();
    assert_eq!(
        wd.read("copy"),
        wd.read("checkpoint"),
        "decode then encode gives the same bytes"
    );
    let back = Checkpoint::read(&wd.path("copy")).unwrap().unwrap();
    assert_eq!(back.header, ck.header);
    assert_eq!(
        back.params.keys().collect::<Vec<_>>(),
        ck.params.keys().collect::<Vec<_>>()
    );
}

/// Replaces the first occurrence of `from` in `bytes` (byte-wise: tensor data is not text).
fn patch(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{from:?} not found"));
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

#[test]
fn readers_reject_unknown_versions_naming_file_and_field() {
    let wd = finished();
    let report = patch(&wd.read("report"), "\"version\": 2", "\"version\": 9");
    std::fs::write(wd.path("report"), report).unwrap();
    let err = Report::read(&wd.path("report")).unwrap_err().to_string();
    assert!(
        err.contains("report") && err.contains("field version is 9"),
        "{err}"
    );

    let raw = zstd::decode_all(wd.read("delta").as_slice()).unwrap();
    let raw = patch(&raw, r#"\"version\":2"#, r#"\"version\":7"#);
    std::fs::write(
        wd.path("delta"),
        zstd::encode_all(raw.as_slice(), 3).unwrap(),
    )
    .unwrap();
    let err = Delta::read(&wd.path("delta")).unwrap_err().to_string();
    assert!(
        err.contains("delta") && err.contains("field version is 7"),
        "{err}"
    );

    let raw = patch(
        &raw,
        r#"\"format\":\"aginet-delta\""#,
        r#"\"format\":\"aginet-other\""#,
    );
    std::fs::write(
        wd.path("delta"),
        zstd::encode_all(raw.as_slice(), 3).unwrap(),
    )
    .unwrap();
    let err = Delta::read(&wd.path("delta")).unwrap_err().to_string();
    assert!(err.contains("field format is \"aginet-other\""), "{err}");
}

#[test]
fn manifest_pins_the_tiny_model_bytes() {
    let m = tiny_manifest();
    let bytes =
        aginet::nn::model::tiny::tiny_model_bytes(0, aginet::nn::model::tiny::TinyQuant::Q8_0)
            .unwrap();
    assert_eq!(
        aginet::format::files::sha256_hex(&bytes),
        m.base.sha256,
        "the tiny writer is deterministic and the manifest pins it"
    );
    assert!(
        bytes.len() < 1_000_000,
        "well under 1 MB: {} bytes",
        bytes.len()
    );
}
