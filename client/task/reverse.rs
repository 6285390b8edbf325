//! The tiny skill's task: reverse a short lowercase word.
//!
//! `{"prompt": "reverse: cabd\n", "completion": "dbac"}`. Learnable from a few dozen examples
//! (the completion uses the prompt's letters, in an order fixed by the prompt), cheap to make
//! in any amount, and scored by the likelihood of the exact reversal.

use crate::task::pair::{jsonl, Pair};
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

/// The task's example for each of `words`.
fn pairs_of(words: &[String]) -> Vec<Pair> {
    words
        .iter()
        .map(|word| Pair {
            prompt: format!("reverse: {word}\n"),
            completion: word.chars().rev().collect(),
        })
        .collect()
}

/// `n` distinct examples from `seed`, none of whose prompts is in `exclude`.
pub fn pairs(seed: u64, n: usize, exclude: &HashSet<String>) -> Vec<Pair> {
    let words: HashSet<String> = exclude
        .iter()
        .filter_map(|p| p.strip_prefix("reverse: "))
        .map(|w| w.trim_end().to_string())
        .collect();
    pairs_of(&reverse_words(seed, n, &words))
}

/// The JSONL lines of the task for `words`; the last `n_eval` are marked `eval`.
pub fn reverse_lines(words: &[String], n_eval: usize) -> String {
    jsonl(&pairs_of(words), n_eval)
}

/// `n` examples as JSONL from `seed`; the first `n - n_eval` are `train`, the rest `eval`.
pub fn reverse_jsonl(seed: u64, n: usize, n_eval: usize) -> String {
    reverse_lines(&reverse_words(seed, n, &HashSet::new()), n_eval)
}
