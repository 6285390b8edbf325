//! `make-work --boinc`: the contract with a BOINC project's `bin/stage_file` and
//! `bin/create_work`, checked against stand-ins that record their command lines (BOINC's server
//! is not packaged for Debian 12), and the templates it installs.

use crate::common::{models, server};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A BOINC project folder whose tools log their arguments; stage_file also copies the file
/// into download/ as the real one does.
fn fake_boinc_project(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("download")).unwrap();
    let tools = [
        ("create_work", "echo \"create_work $*\" >> calls.log\n"),
        (
            "stage_file",
            "echo \"stage_file ${1} $(basename \"$2\")\" >> calls.log\ncp \"$2\" download/\n",
        ),
    ];
    for (name, body) in tools {
        let path = dir.join("bin").join(name);
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn make_work_stages_inputs_and_calls_create_work() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let boinc = dir.path().join("boinc");
    fake_boinc_project(&boinc);
    let p = project.to_str().unwrap();
    let out = server(&[
        "init",
        "--project",
        p,
        "--models",
        models().to_str().unwrap(),
        "--skill",
        "tiny",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server(&[
        "make-work",
        "--project",
        p,
        "--count",
        "2",
        "--boinc",
        boinc.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tiny_v0_000000\ntiny_v0_000001\n"
    );

    let manifest = aginet::format::manifest::Manifest::load(&models(), "tiny").unwrap();
    let model = format!("tiny_{}_model", &manifest.base.sha256[..16]);
    // 6 · N · T with N = 791,808 weights of the tiny base (embedding 272×256, two blocks of
    // 360,960, the output norm 256) and T = 50 steps × 8 × 64 tokens; bound 20× that. Memory:
    // 4 × 850,816 bytes + 256 MiB; disk: 2 × 850,816 + 64 MiB.
    let fpops = "121621708800";
    // Credit 4 · N · T / 4.32e11 (assimilate's formula) for the same T.
    let credit = "0.18768782222222222";
    let log = std::fs::read_to_string(boinc.join("calls.log")).unwrap();
    let mut want = String::new();
    for wu in ["tiny_v0_000000", "tiny_v0_000001"] {
        want += &format!("stage_file --copy {wu}_config\nstage_file --copy {model}\nstage_file --copy {wu}_data\n");
        want += &format!(
            "create_work --appname aginet --wu_name {wu} --wu_template templates/aginet_wu_initial.xml \
             --result_template templates/aginet_result.xml --rsc_fpops_est {fpops} --rsc_fpops_bound 2432434176000 \
             --rsc_memory_bound 271838720 --rsc_disk_bound 68810496 --delay_bound 604800 \
             --credit {credit} {wu}_config {model} {wu}_data\n"
        );
    }
    assert_eq!(log, want);
    assert!(boinc.join("download").join(&model).exists());
    for t in [
        "aginet_wu.xml",
        "aginet_wu_initial.xml",
        "aginet_result.xml",
    ] {
        assert!(boinc.join("templates").join(t).exists(), "{t} installed");
    }
}

#[test]
fn templates_name_every_input_and_output_in_order() {
    let wu_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wu");
    let wu = std::fs::read_to_string(wu_dir.join("wu_template.xml")).unwrap();
    let names: Vec<&str> = wu
        .match_indices("<open_name>")
        .map(|(i, _)| wu[i + 11..].split('<').next().unwrap())
        .collect();
    assert_eq!(names, ["config", "model", "data", "adapter"]);
    let model_info = wu.split("<file_info>").nth(2).unwrap();
    assert!(
        model_info.contains("<sticky/>") && model_info.contains("<number>1</number>"),
        "the model is sticky"
    );
    for (number, what) in [(1, "the base"), (3, "the global adapter")] {
        let info = wu.split("<file_info>").nth(number + 1).unwrap();
        assert!(
            info.contains(&format!("<number>{number}</number>")) && info.contains("<no_delete/>"),
            "{what} is shared by many work units: no_delete"
        );
    }
    let initial = std::fs::read_to_string(wu_dir.join("wu_template_initial.xml")).unwrap();
    assert_eq!(initial.matches("<open_name>").count(), 3);
    let result = std::fs::read_to_string(wu_dir.join("result_template.xml")).unwrap();
    let outs: Vec<&str> = result
        .match_indices("<open_name>")
        .map(|(i, _)| result[i + 11..].split('<').next().unwrap())
        .collect();
    assert_eq!(outs, ["delta", "report"]);
    assert_eq!(
        result.matches("<max_nbytes>").count(),
        2,
        "every output has a size bound"
    );
}
