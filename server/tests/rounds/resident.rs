//! The resident validator (`aginet-server validator`): `validate` hands it results and gets the
//! verdicts the one-shot validation gives, to the bit, whatever results came before; without
//! one (none started, one killed, one serving another project) `validate` does the work
//! itself; BOINC's stop request ends it and removes its socket.

use crate::common::{init_project, models, ok, one_work_unit, server, train};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running validator, its stderr in a file.
struct Validator {
    child: Child,
    log: PathBuf,
}

impl Validator {
    /// Starts `validator` for `project` with `extra` arguments and waits for its socket.
    fn start(project: &Path, extra: &[&str], log: PathBuf) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_aginet-server"))
            .args(["validator", "--project"])
            .arg(project)
            .args(extra)
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let socket = project.join("state/validator.sock");
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no socket: {}",
                std::fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Validator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `validate` of the result in `wu` with `extra` arguments: exit code, stdout, stderr.
fn validate(project: &Path, wu: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["validate", "--project", project.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (d, r) = (wu.join("delta"), wu.join("report"));
    args.extend([d.to_str().unwrap(), r.to_str().unwrap()]);
    let out = server(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The verdict file of `wu`'s delta, removed so that the next validation writes it anew.
fn take_verdict(project: &Path, wu: &Path) -> Vec<u8> {
    let sha = aginet::format::files::sha256_file(&wu.join("delta")).unwrap();
    let path = project.join("state/verdicts").join(format!("{sha}.json"));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

/// A tiny project with three results: two honest ones of different lengths and one whose
/// delta holds a NaN.
fn project_with_results(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let project = init_project(dir, &models(), "tiny");
    let mut wus = Vec::new();
    for (k, steps) in [20, 6, 20].into_iter().enumerate() {
        let wu = one_work_unit(&project, &dir.join(format!("made-{k}")));
        train(&wu, steps);
        wus.push(wu);
    }
    let forged = &wus[2];
    let mut delta = aginet::format::delta::Delta::read(&forged.join("delta")).unwrap();
    let (name, t) = delta.tensors.iter().next().unwrap();
    let (name, t) = (name.clone(), t.clone());
    let nan = (t.ones_like().unwrap() * f64::NAN).unwrap();
    delta.tensors.insert(name, nan);
    let bytes = delta.to_bytes().unwrap();
    std::fs::write(forged.join("delta"), &bytes).unwrap();
    let mut report = aginet::format::report::Report::read(&forged.join("report")).unwrap();
    report.delta_sha256 = aginet::format::files::sha256_hex(&bytes);
    report.write(&forged.join("report")).unwrap();
    (project, wus)
}

#[test]
fn the_resident_validator_gives_the_one_shot_verdicts_to_the_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (project, wus) = project_with_results(dir.path());
    let mut one_shot = Vec::new();
    for wu in &wus {
        let (code, out, err) = validate(&project, wu, &["--local"]);
        let verdict = (code != Some(1)).then(|| take_verdict(&project, wu));
        one_shot.push((code, out, verdict));
        assert!(code == Some(0) || code == Some(1), "{err}");
    }
    assert_eq!(one_shot[0].0, Some(0), "{}", one_shot[0].1);
    assert_eq!(one_shot[1].0, Some(0), "{}", one_shot[1].1);
    assert!(
        one_shot[2].1.contains("non-finite"),
        "the NaN delta is refused: {}",
        one_shot[2].1
    );

    let validator = Validator::start(&project, &[], dir.path().join("validator.log"));
    // Each result after others, so that nothing of one adapter stays in the loaded model.
    for k in [0, 1, 2, 0, 1] {
        let (code, out, err) = validate(&project, &wus[k], &[]);
        let verdict = (code != Some(1)).then(|| take_verdict(&project, &wus[k]));
        assert_eq!(
            (code, out, verdict),
            one_shot[k].clone(),
            "result {k} through the resident validator: {err}"
        );
        assert!(
            !err.contains("validating here instead"),
            "the resident validator answered: {err}"
        );
    }
    // A request that is not one: refused with the reason, and the validator goes on.
    let mut stream =
        std::os::unix::net::UnixStream::connect(project.join("state/validator.sock")).unwrap();
    std::io::Write::write_all(&mut stream, b"not a request\n").unwrap();
    let mut reply = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut reply).unwrap();
    assert!(
        reply.contains("Refused") && reply.contains("malformed request"),
        "{reply}"
    );
    let log = validator.log();
    let handled = log.matches(": valid (").count() + log.matches(": invalid (").count();
    assert_eq!(handled, 5, "every result went through the validator: {log}");
}

#[test]
fn without_a_resident_validator_validate_does_the_work_itself() {
    let dir = tempfile::tempdir().unwrap();
    let project = init_project(dir.path(), &models(), "tiny");
    let wu = one_work_unit(&project, dir.path());
    train(&wu, 20);
    let (code, expected, _) = validate(&project, &wu, &["--local"]);
    assert_eq!(code, Some(0), "{expected}");

    // None started.
    let (code, out, err) = validate(&project, &wu, &[]);
    assert_eq!((code, &out), (Some(0), &expected), "{err}");

    // One for another project: refused, and validated here.
    let other = init_project(&dir.path().join("other"), &models(), "tiny");
    let validator = Validator::start(&other, &[], dir.path().join("other.log"));
    let socket = other.join("state/validator.sock");
    let (code, out, err) = validate(&project, &wu, &["--socket", socket.to_str().unwrap()]);
    assert_eq!((code, &out), (Some(0), &expected), "{err}");
    assert!(err.contains("validating here instead"), "{err}");
    drop(validator);

    // One killed: its socket stays, nothing answers, validated here; a new validator
    // replaces the socket, and a second one on the same socket is refused.
    let mut killed = Validator::start(&project, &[], dir.path().join("killed.log"));
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let socket = project.join("state/validator.sock");
    assert!(socket.exists(), "a killed validator leaves its socket");
    let (code, out, err) = validate(&project, &wu, &[]);
    assert_eq!((code, &out), (Some(0), &expected), "{err}");
    let boinc = dir.path().join("boinc");
    std::fs::create_dir_all(&boinc).unwrap();
    let mut second = Validator::start(
        &project,
        &["--boinc", boinc.to_str().unwrap()],
        dir.path().join("second.log"),
    );
    let refused = server(&["validator", "--project", project.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("a validator already listens there"),
        "{refused:?}"
    );
    let (code, out, err) = validate(&project, &wu, &[]);
    assert_eq!((code, &out), (Some(0), &expected), "{err}");
    assert!(second.log().contains(": valid ("), "{}", second.log());

    // BOINC's bin/stop: the validator exits and removes its socket.
    std::fs::write(boinc.join("stop_daemons"), "").unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = second.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{}", second.log());
    assert!(!socket.exists(), "the socket is removed");
    ok(&server(&[
        "validate",
        "--project",
        project.to_str().unwrap(),
        wu.join("delta").to_str().unwrap(),
        wu.join("report").to_str().unwrap(),
    ]));
}
