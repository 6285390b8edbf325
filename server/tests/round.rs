//! A whole round on the tiny skill through the operator's commands: make-work, the app,
//! validate, assimilate, aggregate; then the next round's work starts from the new version.

use aginet::delta::Delta;
use aginet::report::Report;
mod common;

use common::{models, server, train};
use std::path::{Path, PathBuf};
use std::process::Output;

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A project whose queue holds `n` accepted deltas of 20-step work units.
fn project_with_queue(dir: &Path, n: usize) -> (PathBuf, Vec<PathBuf>) {
    let project = dir.join("project");
    let models = models();
    let p = project.to_str().unwrap();
    ok(server(&[
        "init",
        "--project",
        p,
        "--models",
        models.to_str().unwrap(),
    ]));
    let out = dir.join("wu");
    let made = ok(server(&[
        "make-work",
        "--project",
        p,
        "--count",
        &n.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let wus: Vec<PathBuf> = made.lines().map(PathBuf::from).collect();
    for wu in &wus {
        train(wu, 20);
        let files = [wu.join("delta"), wu.join("report")];
        let name = wu.file_name().unwrap().to_str().unwrap();
        ok(server(&[
            "validate",
            "--project",
            p,
            files[0].to_str().unwrap(),
            files[1].to_str().unwrap(),
        ]));
        ok(server(&[
            "assimilate",
            "--project",
            p,
            files[0].to_str().unwrap(),
            files[1].to_str().unwrap(),
            name,
            "1",
        ]));
    }
    (project, wus)
}

#[test]
fn a_round_aggregates_exactly_signs_and_feeds_the_next_round() {
    let dir = tempfile::tempdir().unwrap();
    let (project, wus) = project_with_queue(dir.path(), 3);
    let p = project.to_str().unwrap();
    let out = ok(server(&[
        "aggregate",
        "--project",
        p,
        "--strategy",
        "fedavg",
    ]));
    assert!(
        out.contains("tiny: version 1 from 3 deltas (0 dropped as stale)"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_dir(project.join("skills/tiny/queue"))
            .unwrap()
            .count(),
        0,
        "the queue is consumed"
    );

    // The new version is signed with the project's key.
    let signed = std::fs::read(project.join("skills/tiny/adapters/v000001.adapter")).unwrap();
    let key = aginet::signed::read_public_key(&project.join("keys/signing.pub")).unwrap();
    let bytes = aginet::signed::open(&signed, &key)
        .expect("the new adapter is signed by the project key")
        .to_vec();

    // Exact for LoRA: with A frozen, FedAvg's new B·A − B₀·A is the weighted mean of the
    // clients' ΔB·A (weights: trained tokens).
    let (meta, new) = aginet::tensors::decode(&bytes).unwrap();
    assert!(meta.contains("\"adapter_version\":1"), "{meta}");
    let mut weighted = None::<candle_core::Tensor>;
    let mut total = 0f64;
    let site = "blk.1.ffn_up";
    let a = new[&format!("{site}.lora_a")].clone();
    for wu in &wus {
        let w = Report::read(&wu.join("report")).unwrap().tokens as f64;
        let db = Delta::read(&wu.join("delta")).unwrap().tensors[&format!("{site}.lora_b")].clone();
        let update = (db.matmul(&a).unwrap() * w).unwrap();
        weighted = Some(match weighted {
            None => update,
            Some(s) => (s + update).unwrap(),
        });
        total += w;
    }
    let want = (weighted.unwrap() / total).unwrap();
    let got = new[&format!("{site}.lora_b")].matmul(&a).unwrap(); // B₀ = 0 at version 0.
    let err: f32 = (got - &want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    let scale: f32 = want.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(
        err <= 1e-5 * scale.max(1e-12),
        "max |ΔW − mean ΔW_i| = {err} (scale {scale})"
    );

    // The next round's work units carry version 1 and its adapter, and the app accepts it.
    let next = dir.path().join("wu2");
    let made = ok(server(&[
        "make-work",
        "--project",
        p,
        "--out",
        next.to_str().unwrap(),
    ]));
    let wu = PathBuf::from(made.trim());
    assert!(
        wu.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("tiny_v1_"),
        "{made}"
    );
    assert_eq!(std::fs::read(wu.join("adapter")).unwrap(), signed);
    assert_eq!(
        std::fs::read(wu.join("project_key")).unwrap(),
        std::fs::read(project.join("keys/signing.pub")).unwrap()
    );
    let config = aginet::config::WorkConfig::read(&wu.join("config")).unwrap();
    assert_eq!(config.adapter_version, 1);
    train(&wu, 2);

    let again = ok(server(&["aggregate", "--project", p]));
    assert!(again.contains("tiny: no queued deltas"), "{again}");
}

#[test]
fn a_crash_before_the_commit_is_redone_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (project, _) = project_with_queue(dir.path(), 2);
    let p = project.to_str().unwrap();
    let queue = project.join("skills/tiny/queue");
    let saved = dir.path().join("saved-queue");
    std::fs::create_dir_all(&saved).unwrap();
    copy_files(&queue, &saved);
    ok(server(&[
        "aggregate",
        "--project",
        p,
        "--strategy",
        "fedadam",
    ]));
    let adapter = project.join("skills/tiny/adapters/v000001.adapter");
    let reference = std::fs::read(&adapter).unwrap();

    // The state of a crash after the round record, before the adapter's rename: the adapter
    // still pending and the queue not yet cleaned.
    std::fs::rename(&adapter, adapter.with_extension("adapter.pending")).unwrap();
    copy_files(&saved, &queue);
    let out = ok(server(&[
        "aggregate",
        "--project",
        p,
        "--strategy",
        "fedadam",
    ]));
    assert!(out.contains("version 1 from 2 deltas"), "{out}");
    assert_eq!(
        std::fs::read(&adapter).unwrap(),
        reference,
        "the redo writes the same bytes"
    );
    assert_eq!(std::fs::read_dir(&queue).unwrap().count(), 0);
    assert!(
        !project
            .join("skills/tiny/adapters/v000002.adapter")
            .exists(),
        "exactly one new version"
    );

    // A crash after the commit, before the queue's clean-up: the rerun only cleans up.
    copy_files(&saved, &queue);
    let out = ok(server(&[
        "aggregate",
        "--project",
        p,
        "--strategy",
        "fedadam",
    ]));
    assert!(out.contains("no queued deltas"), "{out}");
    assert!(
        !project
            .join("skills/tiny/adapters/v000002.adapter")
            .exists(),
        "every delta counted once"
    );
}

/// Copies every file of `from` into `to`.
fn copy_files(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
