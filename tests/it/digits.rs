//! The vision skill's images as `models/digits/fetch.sh` (run by `ci/setup.sh`) takes them out
//! of scikit-learn's wheel.

use aginet::task::digits::{self, TASK_SHIFTS};
use std::collections::HashSet;

#[test]
fn the_fetched_digits_are_1797_images_of_ten_classes_split_one_in_five() {
    let path = super::fixture::models_dir().join("digits/digits.csv");
    assert!(
        path.exists(),
        "{} is missing: run models/digits/fetch.sh (ci/setup.sh does)",
        path.display()
    );
    let images = digits::read_csv(&path).unwrap();
    assert_eq!(images.len(), 1797);
    let mut per_class = [0usize; 10];
    for d in &images {
        per_class[d.label as usize] += 1;
    }
    assert!(
        per_class.iter().all(|&n| (174..=183).contains(&n)),
        "{per_class:?}"
    );
    let held = (0..images.len())
        .filter(|&i| digits::is_held_out(i))
        .count();
    assert_eq!(held, 359);
    let train = digits::pairs(&images, false, &TASK_SHIFTS, 1, usize::MAX, &HashSet::new());
    let held_out = digits::pairs(&images, true, &TASK_SHIFTS, 2, usize::MAX, &HashSet::new());
    let seen: HashSet<&str> = train.iter().map(|p| p.prompt.as_str()).collect();
    let leaked = held_out
        .iter()
        .filter(|p| seen.contains(p.prompt.as_str()))
        .count();
    eprintln!(
        "{} training pairs, {} held-out pairs, {leaked} held-out prompts also among the training ones",
        train.len(),
        held_out.len()
    );
    assert!(train.len() > 5000 && held_out.len() > 1300);
    assert_eq!(
        leaked, 0,
        "no held-out image, shifted, equals a training one"
    );
}

/// `(centred, shifted)` accuracies from a `held-out accuracy X centred, Y shifted` line.
fn accuracies(line: &str) -> (f64, f64) {
    let rest = line
        .split("held-out accuracy ")
        .nth(1)
        .expect("an accuracy line");
    let mut numbers = rest
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<f64>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

#[test]
fn the_vision_base_tool_trains_a_classifier_that_knows_centred_digits_only() {
    let dir = tempfile::tempdir().unwrap();
    let digits_csv = super::fixture::models_dir().join("digits/digits.csv");
    let run = |out: &str| {
        let out_path = dir.path().join(out);
        let result = std::process::Command::new(super::pipeline::server_bin())
            .args(["digits-base", "--epochs", "10", "--digits"])
            .arg(&digits_csv)
            .arg("--out")
            .arg(&out_path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        assert!(result.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
        let sha = stdout.split_whitespace().next().unwrap().to_string();
        let bytes = std::fs::read(&out_path).unwrap();
        assert_eq!(sha, aginet::files::sha256_hex(&bytes));
        (sha, stderr)
    };
    let (sha, log) = run("a.gguf");
    let quantized = log.lines().last().unwrap();
    assert!(quantized.contains("(Q8_0)"), "{log}");
    let (centred, shifted) = accuracies(quantized);
    assert!(centred >= 0.95, "the base knows centred digits: {log}");
    assert!(
        shifted <= 0.65,
        "and not the shifted ones the skill adapts it to: {log}"
    );
    let (again, _) = run("b.gguf");
    assert_eq!(
        sha, again,
        "one seed, one machine, one thread count: the same bytes"
    );
}
