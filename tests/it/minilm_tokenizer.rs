//! agiNet's WordPiece tokenizer on all-MiniLM-L6-v2's vocabulary, against vectors that Hugging
//! Face's `tokenizers` (an independent implementation) produced from the model's tokenizer.json
//! (`tests/data/minilm_tokenizer.json`, made by `models/minilm/tokenizer_vectors.py`): case,
//! accents, punctuation, CJK, Hangul, Cyrillic, Arabic, emoji, control characters, whitespace,
//! overlong words, special tokens written in the text. The same vectors hold for a base that
//! carries the model's own `tokenizer.json` (GGUF's `tokenizer.huggingface.json`).

use super::fixture::models_dir;
use aginet::format::gguf::Gguf;
use aginet::text::tokenizer::Tokenizer;
use aginet::text::wordpiece;
use candle_core::quantized::gguf_file::{self, Value as V};

fn reference() -> serde_json::Value {
    serde_json::from_str(include_str!("../data/minilm_tokenizer.json")).unwrap()
}

/// A file of MiniLM's, fetched by `models/minilm/fetch.sh`.
fn minilm_file(name: &str) -> String {
    let path = models_dir().join("minilm/model").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run models/minilm/fetch.sh (ci/setup.sh does)",
            path.display()
        )
    })
}

fn assert_matches_reference(tok: &dyn Tokenizer) {
    let reference = reference();
    assert_eq!(reference["cls"], tok.bos());
    assert_eq!(reference["sep"], tok.eos());
    assert_eq!(reference["pad"], tok.pad());
    super::fixture::assert_encodes_like(tok, &reference["vectors"], 25);
}

#[test]
fn minilm_tokenizer_matches_the_reference_vectors() {
    let tokens: Vec<String> = minilm_file("vocab.txt")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(tokens.len(), 30_522);
    assert_matches_reference(&wordpiece::from_tokens(tokens).unwrap());
}

/// A tensorless GGUF in `dir` carrying `json` as its `tokenizer.json`, with MiniLM's ids.
fn base_carrying(dir: &std::path::Path, json: String) -> std::path::PathBuf {
    let reference = reference();
    let id = |key: &str| V::U32(reference[key].as_u64().unwrap() as u32);
    let metadata = [
        ("tokenizer.ggml.model", V::String("bert".into())),
        (aginet::text::HF_JSON_KEY, V::String(json)),
        ("tokenizer.ggml.bos_token_id", id("cls")),
        ("tokenizer.ggml.eos_token_id", id("sep")),
        ("tokenizer.ggml.padding_token_id", id("pad")),
    ];
    let path = dir.join("base.gguf");
    let mut file = std::fs::File::create(&path).unwrap();
    let meta: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut file, &meta, &[]).unwrap();
    path
}

#[test]
fn a_base_carrying_its_tokenizer_json_is_tokenized_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = base_carrying(dir.path(), minilm_file("tokenizer.json"));
    let tok = aginet::text::from_gguf(&Gguf::open(&path).unwrap()).unwrap();
    assert_matches_reference(tok.as_ref());
    assert!(
        tok.to_json().is_some(),
        "it exports as a tokenizer.json again"
    );
}

#[test]
fn a_vocabulary_without_the_bert_specials_is_refused() {
    let err = wordpiece::from_tokens(vec!["[PAD]".into(), "a".into()])
        .err()
        .unwrap();
    assert!(err.contains("[UNK]") || err.contains("[CLS]"), "{err}");
}

#[test]
fn a_malformed_tokenizer_json_is_refused_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut json = minilm_file("tokenizer.json");
    json.truncate(json.len() / 2);
    let path = base_carrying(dir.path(), json);
    let err = aginet::text::from_gguf(&Gguf::open(&path).unwrap())
        .err()
        .expect("half a tokenizer.json is refused")
        .to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains(aginet::text::HF_JSON_KEY),
        "{err}"
    );
}
