//! The BERT WordPiece vocabulary (uncased) a GGUF describes with `tokenizer.ggml.model =
//! "bert"` (all-MiniLM-L6-v2's 30,522 tokens), built as Hugging Face's uncased BERT tokenizer
//! is: the special tokens `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]` and `[MASK]` written in the text are
//! cut out first; `BertNormalizer` (control characters dropped, whitespace to spaces, CJK
//! ideographs set apart, accents stripped, lowercase), `BertPreTokenizer` (whitespace and
//! punctuation), then WordPiece: the longest vocabulary pieces from each word's start, pieces
//! after the first written `##…`, `[UNK]` for a word of over 100 characters or one that cannot
//! be covered.

use crate::error::Result;
use crate::format::gguf::Gguf;
use crate::text::pretrained::Pretrained;
use std::collections::HashMap;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::Vocab;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::AddedToken;

/// `tokenizer.ggml.model` of these vocabularies.
pub const MODEL_NAME: &str = "bert";

/// The longest word (in characters) that is cut into pieces; a longer one is `[UNK]`.
const MAX_WORD_CHARS: usize = 100;

/// The mark of a piece that continues a word.
const CONTINUATION: &str = "##";

/// Builds the tokenizer from the GGUF's `tokenizer.ggml.tokens`.
pub fn from_gguf(g: &Gguf) -> Result<Pretrained> {
    let tokens = g.get_strings("tokenizer.ggml.tokens")?;
    from_tokens(tokens).map_err(|e| g.error(format!("tokenizer.ggml.tokens: {e}")))
}

/// Builds the tokenizer from the vocabulary's tokens in id order (`vocab.txt`'s lines); fails
/// when `[CLS]`, `[SEP]`, `[PAD]` or `[UNK]` is missing. A token listed twice keeps its first id.
pub fn from_tokens(tokens: Vec<String>) -> std::result::Result<Pretrained, String> {
    let mut vocab: HashMap<String, u32> = HashMap::with_capacity(tokens.len());
    for (id, token) in tokens.into_iter().enumerate() {
        let id = u32::try_from(id).map_err(|_| "the vocabulary has over 2^32 tokens")?;
        vocab.entry(token).or_insert(id);
    }
    let id = |token: &str| {
        vocab
            .get(token)
            .copied()
            .ok_or_else(|| format!("the vocabulary has no {token} token"))
    };
    let (cls, sep, pad) = (id("[CLS]")?, id("[SEP]")?, id("[PAD]")?);
    id("[UNK]")?;
    let specials: Vec<AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .into_iter()
        .filter(|t| vocab.contains_key(*t))
        .map(|t| AddedToken::from(t, true).normalized(false))
        .collect();
    let model = WordPiece::builder()
        .vocab(vocab.into_iter().collect::<Vocab>())
        .unk_token("[UNK]".into())
        .continuing_subword_prefix(CONTINUATION.into())
        .max_input_chars_per_word(MAX_WORD_CHARS)
        .build()
        .map_err(|e| e.to_string())?;
    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
        .map_err(|e| e.to_string())?
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_decoder(Some(WordPieceDecoder::new(CONTINUATION.into(), true)));
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| e.to_string())?;
    Ok(Pretrained::new(tokenizer, cls, sep, pad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenizer::Tokenizer;

    /// A tiny vocabulary: ids are the positions in this list.
    const VOCAB: &[&str] = &[
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "aff", "able", "a",
        "##a", "##aa", "hello", "world", ",", "!", "'", "s", "cafe", "naive", "一", "中", "文",
        "x", "##x", "-", "$", "=", "σ", "ab",
    ];

    fn tok() -> Pretrained {
        from_tokens(VOCAB.iter().map(|t| t.to_string()).collect()).unwrap()
    }

    fn id(token: &str) -> u32 {
        VOCAB.iter().position(|t| *t == token).unwrap() as u32
    }

    fn ids(tokens: &[&str]) -> Vec<u32> {
        tokens.iter().map(|t| id(t)).collect()
    }

    #[test]
    fn specials_are_cls_sep_pad() {
        let t = tok();
        assert_eq!((t.bos(), t.eos(), t.pad()), (2, 3, 0));
    }

    #[test]
    fn missing_specials_are_an_error() {
        let err = from_tokens(vec!["[PAD]".into(), "[UNK]".into(), "[CLS]".into()])
            .err()
            .unwrap();
        assert!(err.contains("[SEP]"), "{err}");
    }

    #[test]
    fn longest_match_first_with_continuation_pieces() {
        let t = tok();
        assert_eq!(t.encode("unaffable"), ids(&["un", "##aff", "##able"]));
        assert_eq!(t.encode("affable"), ids(&["aff", "##able"]));
        assert_eq!(t.encode("aaaaa"), ids(&["a", "##aa", "##aa"]));
        assert_eq!(t.encode("ab"), ids(&["ab"]));
    }

    #[test]
    fn uncoverable_and_overlong_words_are_unk() {
        let t = tok();
        assert_eq!(t.encode("unaffablez hello"), ids(&["[UNK]", "hello"]));
        assert_eq!(t.encode("xyz"), ids(&["[UNK]"]));
        let mut hundred = ids(&["x"]);
        hundred.extend(std::iter::repeat_n(id("##x"), 99));
        assert_eq!(t.encode(&"x".repeat(100)), hundred);
        assert_eq!(t.encode(&"x".repeat(101)), ids(&["[UNK]"]));
    }

    #[test]
    fn splits_on_whitespace_and_punctuation() {
        let t = tok();
        assert_eq!(
            t.encode("  Hello,world!  x's x-x $=x "),
            ids(&["hello", ",", "world", "!", "x", "'", "s", "x", "-", "x", "$", "=", "x"])
        );
        assert_eq!(t.encode("hello\u{2014}x"), ids(&["hello", "[UNK]", "x"]));
        assert_eq!(t.encode(""), Vec::<u32>::new());
        assert_eq!(t.encode(" \t\n "), Vec::<u32>::new());
    }

    #[test]
    fn lowercases_and_strips_accents() {
        let t = tok();
        assert_eq!(t.encode("CAFÉ Naïve"), ids(&["cafe", "naive"]));
        assert_eq!(t.encode("cafe\u{301}"), ids(&["cafe"]));
        assert_eq!(t.encode("Σ"), ids(&["σ"]));
        assert_eq!(
            t.encode("\u{2260}"),
            ids(&["="]),
            "≠ is = and a combining mark"
        );
    }

    #[test]
    fn spaces_out_cjk_ideographs() {
        let t = tok();
        assert_eq!(t.encode("a中文x"), ids(&["a", "中", "文", "x"]));
        assert_eq!(t.encode("一の"), ids(&["一", "[UNK]"]));
    }

    #[test]
    fn drops_control_characters_and_maps_whitespace() {
        let t = tok();
        assert_eq!(t.encode("he\0llo\u{7}\u{FFFD}\u{200B}"), ids(&["hello"]));
        assert_eq!(
            t.encode("a\u{b}b"),
            ids(&["ab"]),
            "VT is dropped, not a space"
        );
        assert_eq!(t.encode("x\u{a0}x\u{3000}x\tx"), ids(&["x", "x", "x", "x"]));
    }

    #[test]
    fn cuts_out_special_tokens_written_in_the_text() {
        let t = tok();
        assert_eq!(
            t.encode("[CLS]hello [SEP] x[MASK]"),
            ids(&["[CLS]", "hello", "[SEP]", "x", "[MASK]"])
        );
        assert_eq!(t.encode("[cls]"), ids(&["[UNK]", "[UNK]", "[UNK]"]));
        assert_eq!(t.encode("[CLS"), ids(&["[UNK]", "[UNK]"]));
    }

    #[test]
    fn never_panics_on_odd_text() {
        let t = tok();
        for text in [
            "\u{10FFFF}",
            "\u{E000}",
            "[",
            "[[SEP]",
            "\u{301}\u{301}",
            "🙂🇫🇷",
        ] {
            let _ = t.encode(text);
        }
        assert_eq!(t.encode("[[SEP]"), ids(&["[UNK]", "[SEP]"]));
    }
}
