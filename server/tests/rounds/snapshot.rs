//! The public snapshot of a project after a short local federation: its checksums and their
//! signature, its metrics, the PEFT and llama.cpp exports, the SVG plots, and the page as headless Chromium
//! renders it (Debian's `chromium`, installed by `ci/setup.sh`).

use ed25519_dalek::Verifier;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A demo project of two rounds and its snapshot folder.
fn demo_snapshot(dir: &Path) -> (PathBuf, PathBuf) {
    let project = dir.join("demo");
    let text = crate::common::demo(
        &project,
        &["--rounds", "2", "--volunteers", "4", "--steps", "20"],
    );
    let public = project.join("public");
    assert!(text.contains("dashboard: file://"), "{text}");
    (project, public)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_snapshot_is_signed_complete_and_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (project, public) = demo_snapshot(dir.path());

    // Every file is listed with its sha256, and the list is signed by the project key.
    let sums = std::fs::read_to_string(public.join("SHA256SUMS")).unwrap();
    let mut listed = 0;
    for line in sums.lines() {
        let (sha, rel) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(public.join(rel)).unwrap();
        assert_eq!(aginet::format::files::sha256_hex(&bytes), sha, "{rel}");
        listed += 1;
    }
    assert_eq!(listed, 11, "{sums}");
    let key = aginet::format::signed::read_public_key(&public.join("project_key.pub")).unwrap();
    assert_eq!(
        std::fs::read(public.join("project_key.pub")).unwrap(),
        std::fs::read(project.join("keys/signing.pub")).unwrap()
    );
    let sig = hex::decode(
        std::fs::read_to_string(public.join("SHA256SUMS.sig"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
    key.verify(sums.as_bytes(), &sig)
        .expect("SHA256SUMS is signed by the project key");
    let mut forged = sums.clone().into_bytes();
    forged[0] ^= 1;
    assert!(key.verify(&forged, &sig).is_err());

    // Metrics: two versions past the derived one, the reward rising, a night of results.
    let metrics = read_json(&public.join("metrics.json"));
    let tiny = &metrics["skills"][0];
    assert_eq!(tiny["current_version"], 2);
    let rewards: Vec<f64> = tiny["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["reward"].as_f64().unwrap())
        .collect();
    assert!(
        rewards[2] > rewards[0],
        "the held-out reward rises: {rewards:?}"
    );
    let night = &metrics["nights"][0];
    assert_eq!(
        night["accepted"], 8,
        "4 results a round, 2 of them reissued: {night}"
    );
    assert_eq!(night["active_hosts"], 2, "{night}");
    assert!(night["rejected"].as_object().unwrap().len() >= 2, "{night}");

    // The PEFT export: both factors of every site under PEFT's names, and reference logits.
    let export = public.join("adapters/tiny/v2");
    let config = read_json(&export.join("adapter_config.json"));
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 8);
    assert_eq!(config["target_modules"].as_array().unwrap().len(), 7);
    let weights = std::fs::read(export.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&weights).unwrap();
    assert_eq!(st.len(), 2 * 2 * 7, "A and B of 7 targets in 2 blocks");
    let q_b = st
        .tensor("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight")
        .unwrap();
    assert_eq!(q_b.shape(), [256, 8]);
    let q_a = st
        .tensor("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight")
        .unwrap();
    assert_eq!(q_a.shape(), [8, 256]);
    assert!(
        q_b.data().iter().any(|b| *b != 0),
        "the trained B is exported"
    );
    let reference = read_json(&export.join("reference.json"));
    let tokens = reference["tokens"].as_array().unwrap().len();
    let logits = reference["logits"].as_array().unwrap();
    assert_eq!(logits.len(), tokens);
    assert_eq!(logits[0].as_array().unwrap().len(), 272);
    assert!(
        !export.join("tokenizer.json").exists(),
        "the tiny model's byte vocabulary has no tokenizer.json form"
    );

    // The llama.cpp export: an adapter GGUF with llama.cpp's keys and tensor names, the same
    // factors as the PEFT export (A is never permuted).
    let path = export.join("adapter.gguf");
    let mut file = std::fs::File::open(&path).unwrap();
    let gguf = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let text = |k: &str| gguf.metadata[k].to_string().unwrap().clone();
    assert_eq!(text("general.type"), "adapter");
    assert_eq!(text("adapter.type"), "lora");
    assert_eq!(text("general.architecture"), "llama");
    assert_eq!(gguf.metadata["adapter.lora.alpha"].to_f32().unwrap(), 16.0);
    assert_eq!(gguf.tensor_infos.len(), 2 * 2 * 7);
    let info = &gguf.tensor_infos["blk.1.attn_q.weight.lora_a"];
    assert_eq!(info.shape.dims(), [8, 256]);
    assert_eq!(
        gguf.tensor_infos["blk.1.attn_q.weight.lora_b"].shape.dims(),
        [256, 8]
    );
    let a = info
        .read(
            &mut file,
            gguf.tensor_data_offset,
            &candle_core::Device::Cpu,
        )
        .unwrap()
        .dequantize(&candle_core::Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let peft_a: Vec<f32> = q_a
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(a, peft_a);

    // The plots are well-formed SVG, and every relative link of the page exists.
    for plot in ["reward", "results", "hosts", "credit"] {
        let text = std::fs::read_to_string(public.join(format!("plots/{plot}.svg"))).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{plot}");
    }
    let page = std::fs::read_to_string(public.join("index.html")).unwrap();
    for link in page
        .split(['"'])
        .filter(|s| s.starts_with("plots/") || s.starts_with("adapters/") || s.ends_with(".json"))
    {
        assert!(public.join(link).exists(), "broken link {link}");
    }

    // Headless Chromium renders it without a console message, and not blank.
    let shot = dir.path().join("page.png");
    let out = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1000,2400",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", public.join("index.html").display()))
        .output()
        .expect("chromium runs (ci/setup.sh installs Debian's chromium)");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let pixels = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    let ink = pixels
        .chunks_exact(channels)
        .filter(|p| p[..3].iter().any(|c| *c < 200))
        .count();
    let total = pixels.len() / channels;
    assert!(
        ink * 100 > total * 2,
        "the page is not blank: {ink} of {total} pixels inked"
    );
}
