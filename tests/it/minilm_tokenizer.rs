//! agiNet's WordPiece tokenizer on all-MiniLM-L6-v2's vocabulary, against vectors that Hugging
//! Face's `tokenizers` (an independent implementation) produced from the model's tokenizer.json
//! (`tests/data/minilm_tokenizer.json`, made by `models/minilm/tokenizer_vectors.py`): case,
//! accents, punctuation, CJK, Hangul, Cyrillic, Arabic, emoji, control characters, whitespace,
//! overlong words, special tokens written in the text.

use super::fixture::models_dir;
use aginet::text::tokenizer::Tokenizer;
use aginet::text::wordpiece::WordPiece;

#[test]
fn minilm_tokenizer_matches_the_reference_vectors() {
    let path = models_dir().join("minilm/model/vocab.txt");
    let vocab = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run models/minilm/fetch.sh (ci/setup.sh does)",
            path.display()
        )
    });
    let tokens: Vec<String> = vocab.lines().map(str::to_string).collect();
    assert_eq!(tokens.len(), 30_522);
    let tok = WordPiece::new(tokens).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../data/minilm_tokenizer.json")).unwrap();
    assert_eq!(reference["cls"], tok.bos());
    assert_eq!(reference["sep"], tok.eos());
    assert_eq!(reference["pad"], tok.pad());
    super::fixture::assert_encodes_like(&tok, &reference["vectors"], 25);
}
