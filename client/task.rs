//! The tiny skill's synthetic task: reverse a short lowercase word.
//!
//! `{"prompt": "reverse: cabd\n", "completion": "dbac"}`. Learnable from a few dozen examples
//! (the completion uses the prompt's letters, in an order fixed by the prompt), cheap to make
//! in any amount, and scored by the likelihood of the exact reversal.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// Letters words are drawn from.
const ALPHABET: &[u8] = b"abcdefgh";

/// `n` distinct random words of 3–6 letters from `seed`, none of them in `exclude`.
pub fn reverse_words(seed: u64, n: usize, exclude: &HashSet<String>) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = HashSet::new();
    let mut words = Vec::with_capacity(n);
    while words.len() < n {
        let len = rng.random_range(3..=6);
        let word: String = (0..len)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        if !exclude.contains(&word) && seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words
}

/// The JSONL lines of the task for `words`; the last `n_eval` are marked `eval`.
pub fn reverse_lines(words: &[String], n_eval: usize) -> String {
    let mut out = String::new();
    for (i, word) in words.iter().enumerate() {
        let split = if i + n_eval >= words.len() {
            "eval"
        } else {
            "train"
        };
        let line = serde_json::json!({
            "prompt": format!("reverse: {word}\n"),
            "completion": word.chars().rev().collect::<String>(),
            "split": split,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// `n` examples as JSONL from `seed`; the first `n - n_eval` are `train`, the rest `eval`.
pub fn reverse_jsonl(seed: u64, n: usize, n_eval: usize) -> String {
    reverse_lines(&reverse_words(seed, n, &HashSet::new()), n_eval)
}
