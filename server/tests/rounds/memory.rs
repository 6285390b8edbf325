//! The memory skill: `convert-bert` turns all-MiniLM-L6-v2 (`models/minilm/fetch.sh`, which
//! `ci/setup.sh` runs) into a GGUF base, as the skill's manifest pins it; agiNet's BERT encoder
//! on it reproduces the sentence embeddings sentence-transformers computes
//! (`tests/data/minilm_embeddings.json`, made by `models/minilm/reference_embeddings.py` with
//! transformers in f32); and a work unit's fine-tune raises the held-out recall, which the
//! validator recomputes (refusing a forged claim).

use crate::common::{
    forged_claim_is_refused, init_project, models, ok, one_work_unit, run_app, server,
    valid_rewards, validate,
};
use aginet::format::adapter::LoraSpec;
use aginet::format::gguf::Gguf;
use aginet::format::tensors::NamedTensors;
use aginet::nn::model::bert::{BertDims, BertEncoder, BertOptions};
use aginet::nn::model::WeightMode;
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};

/// The encoder converted into `dir` with its matrices as `quant`.
fn converted(dir: &Path, quant: &str) -> PathBuf {
    let model = models().join("minilm/model");
    assert!(
        model.join("model.safetensors").exists(),
        "{} is missing: run models/minilm/fetch.sh (ci/setup.sh does)",
        model.display()
    );
    let out = dir.join(format!("minilm-{quant}.gguf"));
    ok(&server(&[
        "convert-bert",
        "--in",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quant",
        quant,
    ]));
    out
}

/// The reference texts' token ids and embeddings.
fn reference() -> Vec<(Vec<u32>, Vec<f32>)> {
    let json: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/data/minilm_embeddings.json")).unwrap();
    json["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let ids = serde_json::from_value(v["ids"].clone()).unwrap();
            let emb = serde_json::from_value(v["embedding"].clone()).unwrap();
            (ids, emb)
        })
        .collect()
}

/// The encoder's embeddings of every reference text, in one padded batch.
fn embed(path: &Path, weights: WeightMode, texts: &[(Vec<u32>, Vec<f32>)]) -> Vec<Vec<f32>> {
    let mut g = Gguf::open(path).unwrap();
    let dims = BertDims::from_gguf(&g).unwrap();
    assert_eq!(
        (
            dims.n_layer,
            dims.n_embd,
            dims.n_head,
            dims.n_ff,
            dims.n_vocab
        ),
        (6, 384, 12, 1536, 30522)
    );
    let none = LoraSpec::none();
    let factors = NamedTensors::new();
    let encoder = BertEncoder::from_gguf(
        &mut g,
        &BertOptions {
            expected: &dims,
            weights,
            lora: &none,
            factors: &factors,
            device: &Device::Cpu,
        },
    )
    .unwrap();
    let len = texts.iter().map(|(ids, _)| ids.len()).max().unwrap();
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for (t, _) in texts {
        ids.extend(
            t.iter()
                .copied()
                .chain(std::iter::repeat_n(0, len - t.len())),
        );
        mask.extend((0..len).map(|i| u32::from(i < t.len())));
    }
    let ids = Tensor::from_vec(ids, (texts.len(), len), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(mask, (texts.len(), len), &Device::Cpu).unwrap();
    encoder.embed(&ids, &mask).unwrap().to_vec2().unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
}

/// Checks the embeddings of the base converted with `quant` against the reference: at least
/// `min_cosine` and at most `max_diff` off in any coordinate, for every text.
fn check(quant: &str, weights: WeightMode, min_cosine: f32, max_diff: f32) {
    let dir = tempfile::tempdir().unwrap();
    let path = converted(dir.path(), quant);
    let texts = reference();
    let got = embed(&path, weights, &texts);
    for ((ids, want), got) in texts.iter().zip(&got) {
        let c = cosine(got, want);
        let worst = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "{quant}: {} tokens: cosine {c:.7}, max diff {worst:.2e}",
            ids.len()
        );
        assert!(
            c >= min_cosine && worst <= max_diff,
            "{quant}: cosine {c}, max diff {worst} for ids {ids:?}"
        );
    }
}

#[test]
fn the_exact_encoder_reproduces_sentence_transformers() {
    check("f32", WeightMode::DenseF32, 0.999_999, 1e-6);
}

#[test]
fn the_q8_0_base_stays_close_to_sentence_transformers() {
    let quantized = WeightMode::Quantized(aginet::nn::frozen::FrozenMode::default());
    check("q8_0", quantized, 0.9997, 6e-3);
}

/// A models folder holding the memory skill, its base made as the manifest's recipe says.
fn memory_models(dir: &Path) -> PathBuf {
    let skill = dir.join("models/memory");
    std::fs::create_dir_all(&skill).unwrap();
    std::fs::copy(
        models().join("memory/manifest.toml"),
        skill.join("manifest.toml"),
    )
    .unwrap();
    let base = converted(dir, "q8_0");
    std::fs::rename(base, skill.join("minilm-l6-q8_0.gguf")).unwrap();
    dir.join("models")
}

#[test]
fn a_work_unit_raises_held_out_recall_and_the_validator_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let models = memory_models(dir.path());
    let project = init_project(dir.path(), &models, "memory");
    let wu = one_work_unit(&project, dir.path());
    run_app(&wu, 2);
    let report = aginet::format::report::Report::read(&wu.join("report")).unwrap();
    assert_eq!(report.reward_kind, "recall_at_5");
    eprintln!(
        "work unit: recall@5 {} -> {} in {} steps, {:.1} s",
        report.reward_before, report.reward_after, report.steps, report.wall_time_s
    );
    assert!(
        report.reward_after > report.reward_before + 0.1,
        "recall@5 on the work unit's eval split: {} -> {}",
        report.reward_before,
        report.reward_after
    );

    forged_claim_is_refused(&project, &wu, &report);
    let numbers = valid_rewards(&ok(&validate(&project, &wu, &wu.join("report"))));
    eprintln!("held-out recall@5 {} -> {}", numbers.0, numbers.1);
    assert!(
        numbers.1 > numbers.0 + 0.1,
        "held-out recall@5 {} -> {}",
        numbers.0,
        numbers.1
    );
}
