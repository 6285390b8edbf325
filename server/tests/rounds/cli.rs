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
