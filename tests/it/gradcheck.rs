//! Gradient check: every adapter gradient of the two-block tiny model through the quantized
//! base, against an f32 reference that holds the same (dequantized) weights densely.
//!
//! Tolerance: relative L2 error ≤ 5% and cosine ≥ 0.998 per tensor. With `Dequantize` the
//! batch (over 16 rows) goes through the dequantized f32 product both ways and the gradients
//! agree exactly; `TransposedQ8` runs `g · W` through candle's kernel on a Q8_0 copy of Wᵀ,
//! which rounds the gradient to 8 bits: worst 1.2% (Q8_0, `blk.0.attn_q.lora_a`) and 1.3%
//! (Q4_K, `blk.1.attn_k.lora_b`). With int8 products (`FrozenMode::int8`: the activations
//! rounded to 8 bits per block of 32 in the forward pass, the gradient and a requantized `Wᵀ`
//! in `g · W`) the worst is 2.4% (`blk.1.attn_q.lora_b`): what an 8-bit product holds, within
//! the same 5% bound.

use super::grad_compare::rel_err_and_cosine;
use aginet::format::adapter::{b_name, Adapter, AdapterHeader};
use aginet::format::config::Architecture;
use aginet::format::gguf::Gguf;
use aginet::format::tensors::NamedTensors;
use aginet::learn::eval::batch_loss;
use aginet::nn::frozen::{BackwardMode, FrozenMode};
use aginet::nn::model::llama::{Llama, LoadOptions, HEAD_TARGET};
use aginet::nn::model::tiny::{tiny_model_bytes, TinyQuant};
use aginet::nn::model::WeightMode;
use aginet::text::data::{Batch, Dataset};
use aginet::text::tokenizer::ByteTokenizer;
use candle_core::Device;

const MAX_REL_ERR: f64 = 0.05;
const MIN_COSINE: f64 = 0.998;

/// Gradients of every factor (A and B trained) for one batch, under `weights`.
fn adapter_grads(
    model_path: &std::path::Path,
    weights: WeightMode,
    factors: &NamedTensors,
) -> NamedTensors {
    let manifest = super::fixture::tiny_manifest();
    let Architecture::Llama(arch) = &manifest.architecture else {
        unreachable!("the tiny skill is llama")
    };
    let mut lora = manifest.lora.clone();
    lora.targets.push(HEAD_TARGET.to_string());
    super::grad_compare::factor_gradients(factors, |live| {
        let mut g = Gguf::open(model_path).unwrap();
        let opts = LoadOptions {
            expected: arch,
            weights,
            lora: &lora,
            factors: live,
            max_seq_len: 64,
            device: &Device::Cpu,
        };
        let model = Llama::from_gguf(&mut g, &opts).unwrap();
        let data = Dataset::parse(
            aginet::task::reverse_jsonl(3, 8, 1).as_bytes(),
            &ByteTokenizer,
            64,
        )
        .unwrap();
        let seqs: Vec<_> = data.train.iter().take(4).collect();
        let batch = Batch::new(&seqs, ByteTokenizer::PAD, &Device::Cpu).unwrap();
        batch_loss(&model, &batch).unwrap()
    })
}

/// Random non-zero factors for every site of the tiny skill, the head included.
fn random_factors() -> NamedTensors {
    let manifest = super::fixture::tiny_manifest();
    let mut targets = manifest.lora.targets.clone();
    targets.push(HEAD_TARGET.to_string());
    let sites = manifest.architecture.sites(&targets).unwrap();
    super::grad_compare::random_factors(&sites, manifest.lora.rank, 0.05, 99)
}

fn check(quant: TinyQuant, backward: BackwardMode) {
    check_mode(
        quant,
        FrozenMode {
            backward,
            ..FrozenMode::default()
        },
    );
}

fn check_mode(quant: TinyQuant, mode: FrozenMode) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, tiny_model_bytes(0, quant).unwrap()).unwrap();
    let factors = random_factors();
    let reference = adapter_grads(&path, WeightMode::DenseF32, &factors);
    let quantized = adapter_grads(&path, WeightMode::Quantized(mode), &factors);
    assert_eq!(
        reference.len(),
        2 * (2 * 7 + 1),
        "A and B of 7 targets in 2 blocks plus the head"
    );
    let mut worst = (String::new(), 0f64);
    for (name, want) in &reference {
        let (rel, cos) = rel_err_and_cosine(&quantized[name], want);
        assert!(
            rel <= MAX_REL_ERR && cos >= MIN_COSINE,
            "{quant:?}/{mode:?} {name}: relative error {rel:.4}, cosine {cos:.6}"
        );
        if rel > worst.1 {
            worst = (name.clone(), rel);
        }
    }
    eprintln!(
        "{quant:?}/{mode:?}: worst relative error {:.4} ({})",
        worst.1, worst.0
    );
}

#[test]
fn gradients_through_q8_0_match_f32_reference_dequantizing() {
    check(TinyQuant::Q8_0, BackwardMode::Dequantize);
}

#[test]
fn gradients_through_q8_0_match_f32_reference_transposed_copy() {
    check(TinyQuant::Q8_0, BackwardMode::TransposedQ8);
}

#[test]
fn gradients_through_q8_0_match_f32_reference_with_int8_products() {
    check_mode(TinyQuant::Q8_0, FrozenMode::int8());
}

#[test]
fn gradients_through_q4k_match_f32_reference_dequantizing() {
    check(TinyQuant::Q4K, BackwardMode::Dequantize);
}

#[test]
fn gradients_through_q4k_match_f32_reference_transposed_copy() {
    check(TinyQuant::Q4K, BackwardMode::TransposedQ8);
}

#[test]
fn initial_adapter_is_shared_and_neutral() {
    let manifest = super::fixture::tiny_manifest();
    let Architecture::Llama(arch) = &manifest.architecture else {
        unreachable!("the tiny skill is llama")
    };
    let sites = arch.sites(&manifest.lora.targets).unwrap();
    let header = AdapterHeader {
        format: "aginet-adapter".into(),
        version: 1,
        skill: "tiny".into(),
        base_sha256: "0".repeat(64),
        adapter_version: 0,
        lora: manifest.lora.clone(),
    };
    let a = Adapter::initial(header.clone(), &sites, 5).unwrap();
    let b = Adapter::initial(header, &sites, 5).unwrap();
    assert_eq!(
        a.to_bytes().unwrap(),
        b.to_bytes().unwrap(),
        "same seed, same adapter bytes"
    );
    let bsum: f32 = a.tensors[&b_name(&sites[0].name)]
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(
        bsum, 0.0,
        "B starts at zero so the initial adapter changes nothing"
    );
}
