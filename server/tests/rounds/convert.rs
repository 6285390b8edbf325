//! `convert-base` on the real Gemma 3 270M base (`models/gemma3-270m/fetch.sh`, which
//! `ci/setup.sh` runs): every Q5_0 tensor becomes Q8_0 and dequantizes to exactly the same
//! values; every other tensor is copied byte for byte; the output's bytes are pinned.

use candle_core::quantized::{gguf_file, GgmlDType};
use candle_core::Device;
use std::path::Path;

/// sha256 of the converted Gemma 3 270M base: the conversion is deterministic.
const CONVERTED_SHA256: &str = "306746614af01a9324222b2dde83984b18d88551abae1c3a5b739759b423df1d";

#[test]
fn q5_0_tensors_become_q8_0_with_identical_values() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    assert!(
        base.exists(),
        "{} is missing: run models/gemma3-270m/fetch.sh (ci/setup.sh does)",
        base.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("converted.gguf");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_aginet-server"))
        .args(["convert-base", "--in"])
        .arg(&base)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&run.stderr)
    );
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
