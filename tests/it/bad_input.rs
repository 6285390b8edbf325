//! Bad input: each class gives a clear error naming the file and the problem, its own exit
//! code, and no panic.

use super::fixture::{stderr, WorkDir};
use aginet::app::exit;
use aginet::format::adapter::{Adapter, AdapterHeader};
use aginet::format::config::Architecture;

/// Runs the app and checks it fails with `code` and a message naming `file` and `problem`.
fn expect_failure(wd: &WorkDir, code: u8, file: &str, problem: &str) {
    let out = wd.run_app(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code as i32), "stderr: {err}");
    let path = wd.path(file).display().to_string();
    assert!(err.contains(&path), "message should name {path}: {err}");
    assert!(
        err.contains(problem),
        "message should say {problem:?}: {err}"
    );
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert!(
        !wd.path("delta").exists() && !wd.path("report").exists(),
        "no results on failure"
    );
}

#[test]
fn truncated_gguf_header() {
    let wd = WorkDir::tiny(2);
    let model = wd.read("model");
    std::fs::write(wd.path("model"), &model[..200]).unwrap();
    wd.pin_model_sha();
    expect_failure(&wd, exit::MODEL, "model", "malformed GGUF header");
}

#[test]
fn wrong_magic() {
    let wd = WorkDir::tiny(2);
    let mut model = wd.read("model");
    model[..4].copy_from_slice(b"GGML");
    std::fs::write(wd.path("model"), &model).unwrap();
    wd.pin_model_sha();
    expect_failure(&wd, exit::MODEL, "model", "not a GGUF file");
}

#[test]
fn tensor_data_past_end_of_file() {
    let wd = WorkDir::tiny(2);
    let model = wd.read("model");
    std::fs::write(wd.path("model"), &model[..model.len() - 1000]).unwrap();
    wd.pin_model_sha();
    expect_failure(&wd, exit::MODEL, "model", "lies past the end of the file");
}

#[test]
fn shapes_that_disagree_with_the_manifest() {
    let wd = WorkDir::tiny(2);
    let mut c = wd.config();
    let Architecture::Llama(arch) = &mut c.architecture else {
        unreachable!("the tiny skill is llama")
    };
    arch.n_ff = 512;
    wd.write_config(&c);
    expect_failure(&wd, exit::MODEL, "model", "disagree with the skill's");
}

#[test]
fn base_sha256_mismatch() {
    let wd = WorkDir::tiny(2);
    let mut c = wd.config();
    c.base_sha256 = "ab".repeat(32);
    wd.write_config(&c);
    expect_failure(&wd, exit::MODEL, "model", "the config expects abab");
}

#[test]
fn missing_config_field() {
    let wd = WorkDir::tiny(2);
    let text = String::from_utf8(wd.read("config")).unwrap();
    let text = text.replace("\"steps\": 2,", "");
    std::fs::write(wd.path("config"), text).unwrap();
    expect_failure(&wd, exit::CONFIG, "config", "missing field `steps`");
}

#[test]
fn ill_typed_config_field() {
    let wd = WorkDir::tiny(2);
    let text = String::from_utf8(wd.read("config")).unwrap();
    let text = text.replace("\"steps\": 2,", "\"steps\": \"two\",");
    std::fs::write(wd.path("config"), text).unwrap();
    expect_failure(&wd, exit::CONFIG, "config", "invalid type: string \"two\"");
}

#[test]
fn out_of_range_config_field() {
    let wd = WorkDir::tiny(2);
    let mut c = wd.config();
    c.hyper.lr = -1.0;
    wd.write_config(&c);
    expect_failure(&wd, exit::CONFIG, "config", "field hyper.lr is -1");
}

#[test]
fn architecture_dimension_out_of_range() {
    // Found by the `config` fuzz target: no heads divided the width by zero.
    let wd = WorkDir::tiny(2);
    let mut c = wd.config();
    let Architecture::Llama(arch) = &mut c.architecture else {
        unreachable!("the tiny skill is llama")
    };
    arch.n_head = 0;
    wd.write_config(&c);
    expect_failure(
        &wd,
        exit::CONFIG,
        "config",
        "architecture: n_head is 0, expected 1 to 1048576",
    );
}

#[test]
fn unknown_config_version() {
    let wd = WorkDir::tiny(2);
    let mut c = wd.config();
    c.version = 2;
    wd.write_config(&c);
    expect_failure(&wd, exit::CONFIG, "config", "field version is 2");
}

#[test]
fn empty_data_set() {
    let wd = WorkDir::tiny(2);
    std::fs::write(wd.path("data"), "\n\n").unwrap();
    expect_failure(&wd, exit::DATA, "data", "the data set is empty");
}

#[test]
fn non_utf8_data() {
    let wd = WorkDir::tiny(2);
    let mut data = wd.read("data");
    let second_line = data.iter().position(|b| *b == b'\n').unwrap() + 5;
    data[second_line] = 0xff;
    std::fs::write(wd.path("data"), &data).unwrap();
    expect_failure(&wd, exit::DATA, "data", "line 2: not valid UTF-8");
}

#[test]
fn malformed_data_line() {
    let wd = WorkDir::tiny(2);
    let mut data = wd.read("data");
    data.extend_from_slice(b"{\"prompt\": \"x\"}\n");
    std::fs::write(wd.path("data"), &data).unwrap();
    expect_failure(
        &wd,
        exit::DATA,
        "data",
        "line 65: missing field `completion`",
    );
}

/// An adapter file for the fixture's work unit, altered by `edit`.
fn write_adapter(wd: &WorkDir, edit: impl FnOnce(&mut AdapterHeader)) {
    let c = wd.config();
    let Architecture::Llama(arch) = &c.architecture else {
        unreachable!("the tiny skill is llama")
    };
    let mut header = AdapterHeader {
        format: "aginet-adapter".into(),
        version: 1,
        skill: c.skill.clone(),
        base_sha256: c.base_sha256.clone(),
        adapter_version: c.adapter_version,
        lora: c.lora.clone(),
    };
    edit(&mut header);
    let sites = arch.sites(&c.lora.targets).unwrap();
    let adapter = Adapter::initial(header, &sites, 3).unwrap();
    let key = project_key();
    std::fs::write(wd.path("adapter"), adapter.to_signed_bytes(&key).unwrap()).unwrap();
    std::fs::write(
        wd.path("project_key"),
        hex::encode(key.verifying_key().to_bytes()),
    )
    .unwrap();
}

/// The test project's signing key.
fn project_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[9u8; 32])
}

#[test]
fn forged_adapter() {
    let wd = WorkDir::tiny(2);
    write_adapter(&wd, |_| {});
    let mut bytes = wd.read("adapter");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(wd.path("adapter"), bytes).unwrap();
    expect_failure(
        &wd,
        exit::ADAPTER,
        "adapter",
        "does not verify with the project key",
    );
}

#[test]
fn adapter_signed_by_another_key() {
    let wd = WorkDir::tiny(2);
    write_adapter(&wd, |_| {});
    let other = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
    std::fs::write(
        wd.path("project_key"),
        hex::encode(other.verifying_key().to_bytes()),
    )
    .unwrap();
    expect_failure(
        &wd,
        exit::ADAPTER,
        "adapter",
        "does not verify with the project key",
    );
}

#[test]
fn unsigned_adapter() {
    let wd = WorkDir::tiny(2);
    write_adapter(&wd, |_| {});
    let signed = wd.read("adapter");
    std::fs::write(wd.path("adapter"), &signed[8 + 64..]).unwrap();
    expect_failure(
        &wd,
        exit::ADAPTER,
        "adapter",
        "refusing an unsigned adapter",
    );
}

#[test]
fn adapter_without_a_project_key() {
    let wd = WorkDir::tiny(2);
    write_adapter(&wd, |_| {});
    std::fs::remove_file(wd.path("project_key")).unwrap();
    expect_failure(&wd, exit::ADAPTER, "adapter", "project_key is missing");
}

#[test]
fn adapter_of_the_wrong_rank() {
    let wd = WorkDir::tiny(2);
    write_adapter(&wd, |h| h.lora.rank = 4);
    expect_failure(
        &wd,
        exit::ADAPTER,
        "adapter",
        "field lora.rank is 4, the work unit expects 8",
    );
}

#[test]
fn adapter_of_an_unknown_file_version() {
    let wd = WorkDir::tiny(2);
    write_adapter(&wd, |h| h.version = 2);
    expect_failure(&wd, exit::ADAPTER, "adapter", "field version is 2");
}

#[test]
fn adapter_of_another_global_version() {
    let wd = WorkDir::tiny(2);
    write_adapter(&wd, |h| h.adapter_version = 3);
    expect_failure(
        &wd,
        exit::ADAPTER,
        "adapter",
        "field adapter_version is 3, the work unit expects 0",
    );
}

#[test]
fn missing_adapter_after_the_first_round() {
    let wd = WorkDir::tiny(2);
    let mut c = wd.config();
    c.adapter_version = 2;
    wd.write_config(&c);
    expect_failure(&wd, exit::ADAPTER, "adapter", "adapter_version 2 needs one");
}

#[test]
fn a_valid_adapter_file_is_used() {
    let wd = WorkDir::tiny(2);
    write_adapter(&wd, |_| {});
    let out = wd.run_app(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_reward_the_architecture_does_not_compute() {
    let wd = WorkDir::tiny(2);
    let mut c = wd.config();
    c.reward = Some("accuracy".into());
    wd.write_config(&c);
    expect_failure(
        &wd,
        exit::CONFIG,
        "config",
        "field reward: a decoder does not compute \"accuracy\"",
    );
}
