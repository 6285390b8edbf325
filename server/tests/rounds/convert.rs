//! `convert-base` on the real Gemma 3 270M base (`models/gemma3-270m/fetch.sh`, which
//! `ci/setup.sh` runs): every Q5_0 tensor becomes Q8_0 and dequantizes to exactly the same
//! values; every other tensor is copied byte for byte; the output's bytes are pinned. And
//! `cut-base` on it and on MiniLM: seeds for the fuzzers that the app's loaders read whole.

use crate::common::{models, ok, server};
use aginet::format::adapter::LoraSpec;
use aginet::format::config::Architecture;
use aginet::format::gguf::Gguf;
use aginet::format::tensors::NamedTensors;
use aginet::nn::frozen::FrozenMode;
use aginet::nn::model::{self, bert, gemma3, ModelOptions, WeightMode};
use candle_core::quantized::{gguf_file, GgmlDType};
use candle_core::Device;
use std::path::{Path, PathBuf};

/// A fetched model's path (`ci/setup.sh` fetches them).
fn fetched(relative: &str) -> PathBuf {
    let path = models().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run models/*/fetch.sh (ci/setup.sh does)",
        path.display()
    );
    path
}

/// `aginet-server COMMAND --in INPUT --out OUT`, which must succeed; its output.
fn in_out(command: &str, input: &Path, out: &Path) -> String {
    ok(&server(&[
        command,
        "--in",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]))
}

/// `cut-base` with its defaults: one layer, 64 wide, two heads, 2048 tokens.
fn cut(input: &Path, out: &Path) {
    let text = in_out("cut-base", input, out);
    assert!(text.contains("tensors"), "{text}");
    let size = std::fs::metadata(out).unwrap().len();
    assert!(
        size < 1 << 20,
        "{}: {size} bytes, over a fuzz input's 1 MiB",
        out.display()
    );
}

#[test]
fn cut_gemma_and_minilm_bases_are_under_1_mib_and_load_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (lora, factors, device) = (LoraSpec::none(), NamedTensors::new(), Device::Cpu);
    let weights = WeightMode::Quantized(FrozenMode::default());

    let gemma = dir.path().join("gemma3-cut.gguf");
    cut(&fetched("gemma3-270m/gemma-3-270m-q4_k_m.gguf"), &gemma);
    let mut g = Gguf::open(&gemma).unwrap();
    let cfg = gemma3::Gemma3Config::from_gguf(&g).unwrap();
    let d = &cfg.dims;
    assert_eq!(
        (
            d.n_layer,
            d.n_embd,
            d.n_head,
            d.n_head_kv,
            d.head_dim,
            d.n_ff,
            d.n_vocab
        ),
        (1, 64, 2, 1, 32, 192, 2048)
    );
    let tokenizer = aginet::text::from_gguf(&g).unwrap();
    assert!(!tokenizer.encode("the plan").is_empty());
    let opts = ModelOptions {
        weights,
        lora: &lora,
        factors: &factors,
        max_seq_len: 16,
        device: &device,
    };
    model::load(&Architecture::Gemma3(cfg.dims), &mut g, &opts).unwrap();

    let minilm = dir.path().join("minilm.gguf");
    in_out("convert-bert", &fetched("minilm/model"), &minilm);
    let minilm_cut = dir.path().join("minilm-cut.gguf");
    cut(&minilm, &minilm_cut);
    let mut g = Gguf::open(&minilm_cut).unwrap();
    let dims = bert::BertDims::from_gguf(&g).unwrap();
    assert_eq!(
        (
            dims.n_layer,
            dims.n_embd,
            dims.n_head,
            dims.n_ff,
            dims.n_vocab,
            dims.n_ctx
        ),
        (1, 64, 2, 256, 2048, 512)
    );
    assert!(!aginet::text::from_gguf(&g)
        .unwrap()
        .encode("the plan")
        .is_empty());
    let opts = bert::BertOptions {
        expected: &dims,
        weights,
        lora: &lora,
        factors: &factors,
        device: &device,
    };
    bert::BertEncoder::from_gguf(&mut g, &opts).unwrap();
}

/// sha256 of the converted Gemma 3 270M base: the conversion is deterministic.
const CONVERTED_SHA256: &str = "306746614af01a9324222b2dde83984b18d88551abae1c3a5b739759b423df1d";

#[test]
fn q5_0_tensors_become_q8_0_with_identical_values() {
    let base = fetched("gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("converted.gguf");
    let text = in_out("convert-base", &base, &out);
    assert!(
        text.contains("81 Q5_0 tensors now Q8_0, 0 inexact blocks"),
        "{text}"
    );

    let (mut a, mut b) = (
        std::fs::File::open(&base).unwrap(),
        std::fs::File::open(&out).unwrap(),
    );
    let (ca, cb) = (
        gguf_file::Content::read(&mut a).unwrap(),
        gguf_file::Content::read(&mut b).unwrap(),
    );
    assert_eq!(ca.metadata.len(), cb.metadata.len());
    assert_eq!(ca.tensor_infos.len(), cb.tensor_infos.len());
    let mut converted = 0;
    for name in ca.tensor_infos.keys() {
        let ta = ca.tensor(&mut a, name, &Device::Cpu).unwrap();
        let tb = cb.tensor(&mut b, name, &Device::Cpu).unwrap();
        assert_eq!(ta.shape(), tb.shape(), "{name}");
        if ta.dtype() == GgmlDType::Q5_0 {
            assert_eq!(tb.dtype(), GgmlDType::Q8_0, "{name}");
            let va = ta.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
            let vb = tb.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
            assert_eq!(
                va.to_vec1::<f32>().unwrap(),
                vb.to_vec1::<f32>().unwrap(),
                "{name} dequantizes to the same values"
            );
            converted += 1;
        } else {
            assert_eq!(ta.dtype(), tb.dtype(), "{name}");
            assert_eq!(ta.data().unwrap(), tb.data().unwrap(), "{name} is copied");
        }
    }
    assert_eq!(converted, 81);
    assert_eq!(
        aginet::format::files::sha256_file(&out).unwrap(),
        CONVERTED_SHA256
    );
}
