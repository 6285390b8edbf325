//! The vision skill through the whole round: `init` installs the committed digits classifier,
//! the volunteer app fine-tunes LoRA on the shifted digits of a work unit, the validator
//! recomputes the claimed accuracy (and refuses a forged one), the local federation raises the
//! held-out accuracy round by round, and the snapshot's export computes the logits its
//! reference records when read by a forward pass written here from the format's description.

use crate::common::{
    forged_claim_is_refused, init_project, models, ok, one_work_unit, run_app, server,
    valid_rewards, validate,
};
use std::path::Path;

fn digits_fetched() {
    let csv = models().join(aginet::task::DIGITS_CSV);
    assert!(
        csv.exists(),
        "{} is missing: run models/digits/fetch.sh (ci/setup.sh does)",
        csv.display()
    );
}

#[test]
fn a_work_unit_raises_accuracy_on_shifted_digits_and_the_validator_agrees() {
    digits_fetched();
    let dir = tempfile::tempdir().unwrap();
    let project = init_project(dir.path(), &models(), "vision");
    let wu = one_work_unit(&project, dir.path());
    let config = aginet::format::config::WorkConfig::read(&wu.join("config")).unwrap();
    assert!(matches!(
        config.architecture,
        aginet::format::config::Architecture::Mlp(_)
    ));

    run_app(&wu, 1);
    let report = aginet::format::report::Report::read(&wu.join("report")).unwrap();
    assert_eq!(report.reward_kind, "accuracy");
    assert_eq!(report.steps, config.steps);
    assert_eq!(
        report.tokens,
        u64::from(config.steps) * config.hyper.batch_size as u64,
        "a classifier counts examples"
    );
    let losses = &report.loss_curve;
    let tenth = losses.len() / 10;
    let (first, last): (f32, f32) = (
        losses[..tenth].iter().sum(),
        losses[losses.len() - tenth..].iter().sum(),
    );
    assert!(
        last < first * 0.8,
        "the training loss falls: {first} -> {last}"
    );
    assert!(
        report.reward_after >= report.reward_before,
        "accuracy on the work unit's eval split: {} -> {}",
        report.reward_before,
        report.reward_after
    );

    // A forged claim is refused by the recomputation; the true one is accepted.
    forged_claim_is_refused(&project, &wu, &report);
    // A report of another skill's kind of reward is refused too.
    let mut other_kind = report.clone();
    other_kind.reward_kind = "token_likelihood".into();
    let path = dir.path().join("other-kind-report");
    other_kind.write(&path).unwrap();
    let refused = String::from_utf8_lossy(&validate(&project, &wu, &path).stdout).into_owned();
    assert!(
        refused.contains(
            "the report's reward kind \"token_likelihood\" is not the skill's \"accuracy\""
        ),
        "{refused}"
    );
    let (before, after) = valid_rewards(&ok(&validate(&project, &wu, &wu.join("report"))));
    assert!(
        after > before + 0.03,
        "held-out accuracy on shifted digits: {before} -> {after}"
    );
}

#[test]
fn the_federation_raises_held_out_accuracy_every_round() {
    digits_fetched();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("demo");
    let text = crate::common::demo(
        &project,
        &["--skill", "vision", "--rounds", "3", "--volunteers", "4"],
    );
    let start: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("global held-out reward at version 0: "))
        .unwrap()
        .parse()
        .unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    let mut last = start;
    for row in &rows {
        assert_eq!(
            (row[1], row[2], row[3]),
            ("4", "2", "2"),
            "honest and interrupted accepted, corrupt and poisoned rejected and reissued: {text}"
        );
        let reward: f64 = row[row.len() - 2].parse().unwrap();
        assert!(reward > last, "held-out accuracy rises every round: {text}");
        last = reward;
    }
    assert!(last > start + 0.08, "{start} -> {last}: {text}");
    let routed = ok(&server(&["route", "--project", project.to_str().unwrap()]));
    assert!(
        routed.starts_with("vision\t") && routed.contains("over 12 valid results"),
        "the router reads the skill's accepted results from the scoreboard: {routed}"
    );
    check_export(&project.join("public/adapters/vision/v3"), &project);
}

/// Reads the export as a PyTorch user would (the base's tensors from the GGUF, the LoRA factors
/// from the safetensors under PEFT's names, `W + (alpha/r)·B·A` per linear layer, tanh-GELU
/// between layers) and checks it computes the reference's logits.
fn check_export(dir: &Path, project: &Path) {
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert!(config["task_type"].is_null());
    let scale = config["lora_alpha"].as_f64().unwrap() / config["r"].as_f64().unwrap();
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    let input: Vec<f64> = serde_json::from_value(reference["input"].clone()).unwrap();
    let want: Vec<f64> = serde_json::from_value(reference["logits"].clone()).unwrap();

    let lora_bytes = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
    let lora = safetensors::SafeTensors::deserialize(&lora_bytes).unwrap();
    let factor = |name: &str| -> (Vec<usize>, Vec<f64>) {
        let t = lora
            .tensor(&format!("base_model.model.{name}.weight"))
            .unwrap();
        let values = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
            .collect();
        (t.shape().to_vec(), values)
    };
    let base_path = project.join("skills/vision/base.gguf");
    let mut file = std::fs::File::open(&base_path).unwrap();
    let gguf = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let mut base = |name: &str| -> (Vec<usize>, Vec<f64>) {
        let q = gguf
            .tensor(&mut file, name, &candle_core::Device::Cpu)
            .unwrap();
        let t = q.dequantize(&candle_core::Device::Cpu).unwrap();
        let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (
            t.dims().to_vec(),
            values.into_iter().map(f64::from).collect(),
        )
    };

    let mut h = input;
    let layers = ["blk.0.ffn", "blk.1.ffn", "output"];
    for (i, layer) in layers.iter().enumerate() {
        let (shape, w) = base(&format!("{layer}.weight"));
        let (_, bias) = base(&format!("{layer}.bias"));
        let (a_shape, a) = factor(&format!("{layer}.lora_A"));
        let (_, b) = factor(&format!("{layer}.lora_B"));
        let (rows, cols, rank) = (shape[0], shape[1], a_shape[0]);
        assert_eq!(cols, h.len());
        let ax: Vec<f64> = (0..rank)
            .map(|r| (0..cols).map(|c| a[r * cols + c] * h[c]).sum())
            .collect();
        let mut out: Vec<f64> = (0..rows)
            .map(|o| {
                let base_term: f64 = (0..cols).map(|c| w[o * cols + c] * h[c]).sum();
                let lora_term: f64 = (0..rank).map(|r| b[o * rank + r] * ax[r]).sum();
                base_term + scale * lora_term + bias[o]
            })
            .collect();
        if i + 1 < layers.len() {
            for v in &mut out {
                let x = *v;
                *v = 0.5
                    * x
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x))
                            .tanh());
            }
        }
        h = out;
    }
    assert_eq!(h.len(), want.len());
    for (got, want) in h.iter().zip(&want) {
        assert!(
            (got - want).abs() < 1e-3 * want.abs().max(1.0),
            "logits {h:?}, reference {want:?}"
        );
    }
}

#[test]
fn the_demo_takes_its_staleness_bound_and_the_skills_strategy() {
    digits_fetched();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("demo");
    let args = ["--skill", "vision", "--rounds", "1", "--volunteers", "3"];
    let buffered = ["--hostile", "0", "--buffer", "1", "--max-staleness", "0"];
    let text = crate::common::demo(&project, &[&args[..], &buffered[..]].concat());
    assert!(
        text.contains("3 volunteers, 1 rounds, diloco at its default η"),
        "the vision manifest's [server] strategy: {text}"
    );
    let settings = std::fs::read_to_string(project.join("project.toml")).unwrap();
    assert!(settings.contains("max_staleness = 0"), "{settings}");
    // With a buffer of 1 each accepted result makes a version, so with a bound of 0 the other
    // two results of the round, computed from version 0, are refused as stale.
    assert!(
        text.contains("stale: adapter version 0 is 1 behind"),
        "{text}"
    );
}
