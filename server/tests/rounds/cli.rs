//! The operator's commands end to end on the tiny skill: init, route, make-work, and the app
//! running a work unit that make-work made.

use crate::common::{models, server, train};
use std::path::{Path, PathBuf};
use std::process::Output;

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn init(dir: &Path) -> PathBuf {
    let project = dir.join("project");
    ok(&server(&[
        "init",
        "--project",
        project.to_str().unwrap(),
        "--models",
        models().to_str().unwrap(),
        "--skill",
        "tiny",
    ]));
    project
}

#[test]
fn init_lays_out_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let project = init(dir.path());
    for path in [
        "project.toml",
        "keys/signing.key",
        "keys/signing.pub",
        "scoreboard.csv",
        "state/next_workunit",
        "skills/tiny/manifest.toml",
        "skills/tiny/base.gguf",
        "skills/tiny/data/train.jsonl",
        "skills/tiny/data/held_out.jsonl",
    ] {
        assert!(project.join(path).is_file(), "{path} missing");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(project.join("keys/signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the secret key is private");
    let again = server(&[
        "init",
        "--project",
        project.to_str().unwrap(),
        "--models",
        models().to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already an agiNet project"));
}

#[test]
fn route_explores_first_and_make_work_writes_runnable_work_units() {
    let dir = tempfile::tempdir().unwrap();
    let project = init(dir.path());
    let p = project.to_str().unwrap();
    let route = ok(&server(&["route", "--project", p]));
    assert!(
        route.starts_with("tiny\t") && route.contains("exploring"),
        "{route}"
    );

    let out = dir.path().join("wu");
    let made = ok(&server(&[
        "make-work",
        "--project",
        p,
        "--count",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]));
    let dirs: Vec<&str> = made.lines().collect();
    assert_eq!(dirs.len(), 2, "{made}");
    assert!(
        dirs[0].ends_with("tiny_v0_000000") && dirs[1].ends_with("tiny_v0_000001"),
        "{made}"
    );
    let wu = Path::new(dirs[0]);
    assert!(
        !wu.join("adapter").exists(),
        "version 0 has no adapter file: the app derives it"
    );
    let data = std::fs::read_to_string(wu.join("data")).unwrap();
    assert_eq!(
        data.lines()
            .filter(|l| l.contains("\"split\":\"train\""))
            .count(),
        64
    );
    assert_eq!(
        data.lines()
            .filter(|l| l.contains("\"split\":\"eval\""))
            .count(),
        8
    );
    let held_out =
        std::fs::read_to_string(project.join("skills/tiny/data/held_out.jsonl")).unwrap();
    for line in held_out.lines() {
        let prompt = serde_json::from_str::<serde_json::Value>(line).unwrap()["prompt"].clone();
        assert!(
            !data.contains(&prompt.to_string()),
            "held-out example {prompt} leaked into a work unit"
        );
    }
    assert_ne!(
        std::fs::read(wu.join("data")).unwrap(),
        std::fs::read(Path::new(dirs[1]).join("data")).unwrap()
    );

    train(wu, 3);
    assert!(wu.join("delta").exists() && wu.join("report").exists());
}

#[test]
fn make_work_rejects_an_unknown_skill() {
    let dir = tempfile::tempdir().unwrap();
    let project = init(dir.path());
    let out = server(&[
        "make-work",
        "--project",
        project.to_str().unwrap(),
        "--skill",
        "vision",
        "--out",
        "x",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skill \"vision\" is not one of this project's skills"),
        "{err}"
    );
}

/// `assimilate --boinc` takes script_assimilator's argument shapes and refuses others with a
/// message naming the shape it expected (BOINC's assimilator exits on a refusal, so the shape
/// must be BOINC's); a missing BOINC config.xml is named too. The whole path against a real
/// BOINC project is `ci/boinc-round.sh`.
#[test]
fn assimilate_boinc_refuses_what_script_assimilator_never_passes() {
    let dir = tempfile::tempdir().unwrap();
    let project = init(dir.path());
    let boinc = dir.path().join("boinc");
    let base = [
        "assimilate",
        "--project",
        project.to_str().unwrap(),
        "--boinc",
        boinc.to_str().unwrap(),
    ];
    for (args, message) in [
        (
            &["--error", "4", "tiny_v0_000001"][..],
            "expected WU_NAME WU_ID BATCH",
        ),
        (
            &["delta", "report", "12", "1.0"][..],
            "work unit id \"delta\"",
        ),
        (&["12"][..], "got no files"),
        (&["12", "delta", "report"][..], "config.xml"),
    ] {
        let out = server(&[&base[..], args].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // A failed work unit in BOINC's shape is logged without the database.
    let out = ok(&server(
        &[&base[..], &["--error", "4", "tiny_v0_000001", "17", "0"]].concat(),
    ));
    assert_eq!(out.trim(), "logged error 4 of tiny_v0_000001");
    let scoreboard = std::fs::read_to_string(project.join("scoreboard.csv")).unwrap();
    assert!(
        scoreboard.contains("tiny_v0_000001,,,,tiny,"),
        "{scoreboard}"
    );
}

/// `work-generator` names a BOINC folder without config.xml, and refuses a zero interval.
#[test]
fn work_generator_refuses_a_folder_that_is_no_boinc_project() {
    let dir = tempfile::tempdir().unwrap();
    let project = init(dir.path());
    let generator = |extra: &[&str]| {
        let base = [
            "work-generator",
            "--project",
            project.to_str().unwrap(),
            "--boinc",
            dir.path().to_str().unwrap(),
        ];
        server(&[&base[..], extra].concat())
    };
    let out = generator(&["--once"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("config.xml"), "{stderr}");
    let out = generator(&["--interval", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interval 0"));
}
