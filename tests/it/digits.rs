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

/// Runs `aginet-server digits-base` for `epochs` into `out`; its stdout and stderr, failing the
/// test if it fails.
fn digits_base(out: &std::path::Path, epochs: usize) -> (String, String) {
    let result = std::process::Command::new(super::pipeline::server_bin())
        .args(["digits-base", "--epochs", &epochs.to_string(), "--digits"])
        .arg(super::fixture::models_dir().join("digits/digits.csv"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(result.status.success(), "{stderr}");
    (String::from_utf8_lossy(&result.stdout).into_owned(), stderr)
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
    let run = |out: &str| {
        let out_path = dir.path().join(out);
        let (stdout, stderr) = digits_base(&out_path, 10);
        let sha = stdout.split_whitespace().next().unwrap().to_string();
        let bytes = std::fs::read(&out_path).unwrap();
        assert_eq!(sha, aginet::format::files::sha256_hex(&bytes));
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

/// The vision skill's learning, below the work-unit plumbing: the base from `digits-base`, an
/// initial adapter on every linear layer (A random and frozen, B zero and trained, as the
/// skills' adapters are), a short fine-tune on the shifted training images, and the held-out
/// accuracy on the shifted images before and after.
#[test]
fn a_short_lora_fine_tune_raises_the_base_s_accuracy_on_shifted_digits() {
    use aginet::format::adapter::{Adapter, AdapterHeader, LoraSpec};
    use aginet::format::gguf::Gguf;
    use aginet::learn::classify::{adapted, reward, ClassifierObjective};
    use aginet::learn::mlp_base::adam;
    use aginet::learn::optim::AdamW;
    use aginet::learn::train::{train, Outcome, TrainJob, TrainState, Unattended};
    use aginet::nn::frozen::FrozenMode;
    use aginet::nn::model::mlp::MlpConfig;
    use aginet::nn::model::WeightMode;
    use aginet::task::image_data::ImageDataset;
    use candle_core::Device;

    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.gguf");
    digits_base(&base, 10);
    let images = digits::read_csv(&super::fixture::models_dir().join("digits/digits.csv")).unwrap();
    let data = ImageDataset {
        train: digits::examples(&images, false, &TASK_SHIFTS),
        eval: digits::examples(&images, true, &TASK_SHIFTS),
    };

    let mut g = Gguf::open(&base).unwrap();
    let cfg = MlpConfig::from_gguf(&g).unwrap();
    let lora = LoraSpec {
        targets: vec!["ffn".into(), "output".into()],
        rank: 8,
        alpha: 16.0,
        train_a: false,
    };
    let sites = cfg.sites(&lora.targets).unwrap();
    let header = AdapterHeader::new("vision", "sha", 0, &lora);
    let adapter = Adapter::initial(header, &sites, 1).unwrap();
    let mode = WeightMode::Quantized(FrozenMode::default());
    let (model, vars) = adapted(&mut g, &cfg, &lora, &adapter, mode).unwrap();
    let before = reward(&model, &data.eval, &Device::Cpu).unwrap();
    let mut config = super::fixture::tiny_manifest().work_config(1, 0);
    config.steps = 100;
    config.hyper = adam(1e-2, 10, 32);
    let objective = ClassifierObjective {
        model: &model,
        data: &data,
        device: &Device::Cpu,
    };
    let job = TrainJob {
        config: &config,
        objective: &objective,
        checkpoint_path: &dir.path().join("checkpoint"),
        inputs_key: "digits",
        started: std::time::Instant::now(),
    };
    let mut state = TrainState::new(data.train.len(), config.seed, before);
    let mut opt = AdamW::new(vars, config.hyper.clone()).unwrap();
    let outcome = train(&job, &mut state, &mut opt, &mut Unattended).unwrap();
    assert_eq!(outcome, Outcome::Finished);
    let after = reward(&model, &data.eval, &Device::Cpu).unwrap();
    eprintln!("held-out accuracy on shifted digits: {before:.3} -> {after:.3} after 100 steps");
    assert!(
        before < 0.65,
        "the base does not know shifted digits: {before}"
    );
    assert!(after > before + 0.1, "{before} -> {after}");
}
