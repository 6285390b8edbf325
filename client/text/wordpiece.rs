//! The BERT WordPiece tokenizer (uncased) a GGUF describes with `tokenizer.ggml.model = "bert"`,
//! e.g. all-MiniLM-L6-v2's 30,522 tokens. It gives the ids Hugging Face's uncased BertTokenizer
//! gives (`tokenizers`' BertNormalizer, BertPreTokenizer and WordPiece models):
//!
//! 1. The special tokens `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]` and `[MASK]` written in the text
//!    (exactly, case included) are cut out first and become their own ids.
//! 2. Cleanup: NUL, U+FFFD and control characters (Cc, Cf, Co, except tab, LF and CR) are dropped
//!    (VT, FF and NEL too, so they join the words around them); other whitespace becomes a space.
//! 3. CJK ideographs get a space on each side (Extension E only from U+2B920, as in `tokenizers`).
//! 4. Accents are stripped (Unicode NFD, then nonspacing marks, Mn, are dropped) and each character
//!    is lowercased on its own (so `Σ` is always `σ`).
//! 5. The text is split on whitespace, and each punctuation character (ASCII 33–47, 58–64, 91–96,
//!    123–126, and Unicode's P* categories) is a word of its own.
//! 6. Each word is cut greedily into the longest vocabulary pieces from its start, pieces after the
//!    first written with `##`; a word longer than 100 characters, or one that cannot be covered,
//!    is `[UNK]`.
//!
//! Unicode data comes from current tables (`unicode-normalization`, `unicode-general-category`)
//! where `tokenizers` uses Unicode 8.0's: characters assigned or recategorised since 2015 (e.g.
//! the format character U+0890, or the punctuation U+2E43) may come out differently. It does not
//! decode.

use crate::error::Result;
use crate::format::gguf::Gguf;
use crate::text::tokenizer::Tokenizer;
use std::collections::HashMap;
use unicode_general_category::{get_general_category, GeneralCategory as Gc};
use unicode_normalization::UnicodeNormalization;

/// The longest word (in characters) that is cut into pieces; a longer one is `[UNK]`.
const MAX_WORD_CHARS: usize = 100;

/// The mark of a piece that continues a word.
const CONTINUATION: &str = "##";

/// A BERT WordPiece vocabulary (uncased).
pub struct WordPiece {
    /// Every token and its id (the first id, if a token is listed twice).
    vocab: HashMap<String, u32>,
    /// Every token, by id.
    tokens: Vec<String>,
    /// The special tokens cut out of the text before normalisation, with their ids.
    specials: Vec<(String, u32)>,
    unk: u32,
    cls: u32,
    sep: u32,
    pad: u32,
}

impl WordPiece {
    /// `tokenizer.ggml.model` of these vocabularies.
    pub const MODEL_NAME: &'static str = "bert";

    /// Builds the tokenizer from the vocabulary's tokens in id order (`vocab.txt`'s lines);
    /// fails when `[CLS]`, `[SEP]`, `[PAD]` or `[UNK]` is missing.
    pub fn new(tokens: Vec<String>) -> std::result::Result<Self, String> {
        let mut vocab = HashMap::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            let id = u32::try_from(id).map_err(|_| "the vocabulary has over 2^32 tokens")?;
            vocab.entry(token.clone()).or_insert(id);
        }
        let id = |token: &str| {
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| format!("the vocabulary has no {token} token"))
        };
        let (unk, cls, sep, pad) = (id("[UNK]")?, id("[CLS]")?, id("[SEP]")?, id("[PAD]")?);
        let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .into_iter()
            .filter_map(|t| vocab.get(t).map(|id| (t.to_string(), *id)))
            .collect();
        Ok(Self {
            vocab,
            tokens,
            specials,
            unk,
            cls,
            sep,
            pad,
        })
    }

    /// Reads the vocabulary from the GGUF's `tokenizer.ggml.tokens`.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let tokens = g.get_strings("tokenizer.ggml.tokens")?;
        Self::new(tokens).map_err(|e| g.error(format!("tokenizer.ggml.tokens: {e}")))
    }

    /// The special token at the front of `text`, if any: its length in bytes and id.
    fn special_at(&self, text: &str) -> Option<(usize, u32)> {
        if !text.starts_with('[') {
            return None;
        }
        self.specials
            .iter()
            .filter(|(token, _)| text.starts_with(token.as_str()))
            .max_by_key(|(token, _)| token.len())
            .map(|(token, id)| (token.len(), *id))
    }

    /// Encodes text that holds no special token: normalises, splits into words and cuts each.
    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        let mut word = String::new();
        for c in normalize(text) {
            if c.is_whitespace() {
                self.encode_word(&word, out);
                word.clear();
            } else if is_punctuation(c) {
                self.encode_word(&word, out);
                word.clear();
                word.push(c);
                self.encode_word(&word, out);
                word.clear();
            } else {
                word.push(c);
            }
        }
        self.encode_word(&word, out);
    }

    /// Cuts one normalised word into the longest pieces from its start (`[UNK]` if it cannot).
    fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if word.chars().count() > MAX_WORD_CHARS {
            out.push(self.unk);
            return;
        }
        let first = out.len();
        let mut piece = String::with_capacity(word.len() + CONTINUATION.len());
        let mut start = 0;
        while start < word.len() {
            let rest = &word[start..];
            // Ends of the candidate pieces, longest first.
            let ends = rest
                .char_indices()
                .map(|(i, c)| i + c.len_utf8())
                .collect::<Vec<_>>();
            let found = ends.iter().rev().find_map(|&end| {
                piece.clear();
                if start > 0 {
                    piece.push_str(CONTINUATION);
                }
                piece.push_str(&rest[..end]);
                self.vocab.get(piece.as_str()).map(|id| (end, *id))
            });
            match found {
                Some((end, id)) => {
                    out.push(id);
                    start += end;
                }
                None => {
                    out.truncate(first);
                    out.push(self.unk);
                    return;
                }
            }
        }
    }
}

impl Tokenizer for WordPiece {
    fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut plain_start = 0;
        let mut at = 0;
        while let Some(rest) = text.get(at..).filter(|r| !r.is_empty()) {
            if let Some((len, id)) = self.special_at(rest) {
                self.encode_plain(&text[plain_start..at], &mut out);
                out.push(id);
                at += len;
                plain_start = at;
            } else {
                at += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        self.encode_plain(&text[plain_start..], &mut out);
        out
    }
    /// The pieces joined, words by a space and `##` pieces onto the word before; special
    /// tokens write nothing. (Lowercasing and stripped accents are not undone.)
    fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        for id in ids {
            let Some(token) = self.tokens.get(*id as usize) else {
                continue;
            };
            if self.specials.iter().any(|(_, s)| s == id) {
                continue;
            }
            match token.strip_prefix(CONTINUATION) {
                Some(rest) => out.push_str(rest),
                None => {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(token);
                }
            }
        }
        out
    }
    fn bos(&self) -> u32 {
        self.cls
    }
    fn eos(&self) -> u32 {
        self.sep
    }
    fn pad(&self) -> u32 {
        self.pad
    }
}

/// BERT's normalisation of `text`: cleanup, spaces around CJK ideographs, accents stripped,
/// lowercased (steps 2–4 of the module doc).
fn normalize(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars()
        .filter(|&c| c != '\0' && c != '\u{FFFD}' && !is_control(c))
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .flat_map(|c| {
            if is_cjk(c) {
                [Some(' '), Some(c), Some(' ')]
            } else {
                [Some(c), None, None]
            }
        })
        .flatten()
        .nfd()
        .filter(|&c| get_general_category(c) != Gc::NonspacingMark)
        .flat_map(char::to_lowercase)
}

/// A control character BERT drops: Cc other than tab, LF and CR; Cf; Co.
fn is_control(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' => false,
        _ => matches!(
            get_general_category(c),
            Gc::Control | Gc::Format | Gc::PrivateUse
        ),
    }
}

/// Punctuation BERT splits off: all non-alphanumeric printable ASCII, and Unicode's P*.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            Gc::ConnectorPunctuation
                | Gc::DashPunctuation
                | Gc::OpenPunctuation
                | Gc::ClosePunctuation
                | Gc::InitialPunctuation
                | Gc::FinalPunctuation
                | Gc::OtherPunctuation
        )
}

/// A CJK ideograph in the blocks BERT spaces out (as `tokenizers` lists them).
fn is_cjk(c: char) -> bool {
    matches!(
        u32::from(c),
        0x4E00..=0x9FFF      // CJK Unified Ideographs
            | 0x3400..=0x4DBF   // Extension A
            | 0x20000..=0x2A6DF // Extension B
            | 0x2A700..=0x2B73F // Extension C
            | 0x2B740..=0x2B81F // Extension D
            | 0x2B920..=0x2CEAF // Extension E from U+2B920 (Google's BERT: from U+2B820)
            | 0xF900..=0xFAFF   // Compatibility Ideographs
            | 0x2F800..=0x2FA1F // Compatibility Ideographs Supplement
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny vocabulary: ids are the positions in this list.
    const VOCAB: &[&str] = &[
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "aff", "able", "a",
        "##a", "##aa", "hello", "world", ",", "!", "'", "s", "cafe", "naive", "一", "中", "文",
        "x", "##x", "-", "$", "=", "σ", "ab",
    ];

    fn tok() -> WordPiece {
        WordPiece::new(VOCAB.iter().map(|t| t.to_string()).collect()).unwrap()
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
        let err = WordPiece::new(vec!["[PAD]".into(), "[UNK]".into(), "[CLS]".into()])
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
