//! agiNet's SentencePiece tokenizer (the `tokenizers` crate's BPE, built from the GGUF) on Gemma 3's vocabulary, against vectors that transformers'
//! GemmaTokenizer (an independent implementation) produced from the same GGUF
//! (`tests/data/gemma3_tokenizer.json`, made by `models/gemma3-270m/tokenizer_vectors.py`):
//! Unicode, emoji, byte fallback, leading and repeated spaces, control tokens.

use super::fixture::gemma_base;
use aginet::format::gguf::Gguf;

#[test]
fn gemma_tokenizer_matches_the_reference_vectors() {
    let path = gemma_base();
    let tok = aginet::text::from_gguf(&Gguf::open(&path).unwrap()).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../data/gemma3_tokenizer.json")).unwrap();
    assert_eq!(reference["bos"], tok.bos());
    super::fixture::assert_encodes_like(tok.as_ref(), &reference["vectors"], 10);
}

#[test]
fn gemma_tokenizer_decodes_what_it_encodes() {
    let path = gemma_base();
    let tok = aginet::text::from_gguf(&Gguf::open(&path).unwrap()).unwrap();
    for text in [
        "Grid 5x5. Start 1,2. Goal 4,5. Walls 2,2 3,4.\nPlan:",
        " R D D D R R",
        "naïve café, Ångström: 東京 🚀 \u{1F9EA}!",
        "  two  spaces\tand a tab",
    ] {
        let ids = tok.encode(text);
        let back = tok.decode(&ids);
        assert!(
            back == text || back.strip_prefix(' ') == Some(text),
            "{text:?} -> {ids:?} -> {back:?}"
        );
    }
    assert_eq!(
        tok.decode(&[tok.bos(), tok.eos()]),
        "",
        "control tokens write nothing"
    );
}

#[test]
fn gemma_tokenizer_json_is_the_same_tokenizer() {
    let path = gemma_base();
    let tok = aginet::text::from_gguf(&Gguf::open(&path).unwrap()).unwrap();
    let json = tok
        .to_json()
        .expect("the Gemma tokenizer exports as a tokenizer.json");
    let back = tokenizers::Tokenizer::from_bytes(json.as_bytes()).expect("it loads back");
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../data/gemma3_tokenizer.json")).unwrap();
    for v in reference["vectors"].as_array().unwrap() {
        let text = v["text"].as_str().unwrap();
        let ids = back.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(ids, tok.encode(text), "{text:?}");
    }
}
