//! agiNet's SentencePiece tokenizer on Gemma 3's vocabulary, against vectors that transformers'
//! GemmaTokenizer (an independent implementation) produced from the same GGUF
//! (`tests/data/gemma3_tokenizer.json`, made by `models/gemma3-270m/tokenizer_vectors.py`):
//! Unicode, emoji, byte fallback, leading and repeated spaces, control tokens.

use super::fixture::models_dir;
use aginet::gguf::Gguf;

#[test]
fn gemma_tokenizer_matches_the_reference_vectors() {
    let path = models_dir().join("gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    assert!(
        path.exists(),
        "{} is missing: run models/gemma3-270m/fetch.sh (ci/setup.sh does)",
        path.display()
    );
    let tok = aginet::tokenizer::from_gguf(&Gguf::open(&path).unwrap()).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../data/gemma3_tokenizer.json")).unwrap();
    assert_eq!(reference["bos"], tok.bos());
    let vectors = reference["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 10);
    for v in vectors {
        let text = v["text"].as_str().unwrap();
        let want: Vec<u32> = v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text), want, "{text:?}");
    }
}
