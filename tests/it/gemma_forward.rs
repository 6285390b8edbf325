//! agiNet's Gemma 3 decoder against transformers' implementation loading the same GGUF
//! (dequantized to f32): logits at every position of three prompts, on a fixed set of token
//! ids (`tests/data/gemma3_logits.json`, made by `models/gemma3-270m/reference_logits.py`).
//!
//! With the weights dequantized to f32 the two compute the same function and agree to float
//! rounding (measured: 1.1–1.6e-6 of the largest logit; tolerance 1e-5). With candle's quantized
//! kernels, which also quantize the activations to 8 bits, they differ by 3.7–5.7e-2
//! (tolerance 1e-1) and the next-token choice must still agree.

use super::fixture::gemma_base;
use aginet::format::adapter::LoraSpec;
use aginet::format::gguf::Gguf;
use aginet::nn::frozen::FrozenMode;
use aginet::nn::model::gemma3::{Gemma3, Gemma3Options};
use aginet::nn::model::WeightMode;
use candle_core::{Device, Tensor};

/// Largest |agiNet − reference| over the kept logits, relative to the largest |reference|.
fn worst_relative_error(model: &Gemma3, case: &serde_json::Value) -> (f64, bool) {
    let tokens: Vec<u32> = case["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let ids: Vec<usize> = case["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let input = Tensor::new(tokens.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model
        .forward(&input)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let reference = case["logits"].as_array().unwrap();
    let (mut worst, mut scale) = (0f64, 0f64);
    for (ours, theirs) in logits.iter().zip(reference) {
        for (id, want) in ids.iter().zip(theirs.as_array().unwrap()) {
            let want = want.as_f64().unwrap();
            worst = worst.max((ours[*id] as f64 - want).abs());
            scale = scale.max(want.abs());
        }
    }
    let last = logits.last().unwrap();
    let ours_top = (0..last.len())
        .max_by(|a, b| last[*a].total_cmp(&last[*b]))
        .unwrap();
    let same_top = case["top10_last"][0].as_u64().unwrap() as usize == ours_top;
    (worst / scale, same_top)
}

#[test]
fn gemma_forward_matches_the_reference_logits() {
    let path = gemma_base();
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../data/gemma3_logits.json")).unwrap();
    let mut g = Gguf::open(&path).unwrap();
    let tok = aginet::text::from_gguf(&g).unwrap();
    let no_adapter = LoraSpec::none();
    let factors = Default::default();
    for (weights, tolerance) in [
        (WeightMode::DenseF32, 1e-5),
        (WeightMode::Quantized(FrozenMode::default()), 1e-1),
    ] {
        let model = Gemma3::from_gguf(
            &mut g,
            &Gemma3Options {
                expected: None,
                weights,
                lora: &no_adapter,
                factors: &factors,
                max_seq_len: 64,
                device: &Device::Cpu,
            },
        )
        .unwrap();
        for case in reference["cases"].as_array().unwrap() {
            let prompt = case["prompt"].as_str().unwrap();
            let mut tokens = vec![tok.bos()];
            tokens.extend(tok.encode(prompt));
            assert_eq!(
                serde_json::json!(tokens),
                case["tokens"],
                "our tokenizer agrees on {prompt:?}"
            );
            let (error, same_top) = worst_relative_error(&model, case);
            eprintln!("{weights:?} {prompt:?}: relative error {error:.2e}, same top-1: {same_top}");
            assert!(error <= tolerance, "{weights:?} {prompt:?}: {error:.2e}");
            assert!(same_top, "{weights:?} {prompt:?}: the next token differs");
        }
    }
}
