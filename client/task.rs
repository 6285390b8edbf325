//! The tiny skill's synthetic task: reverse a short lowercase word.
//!
//! `{"prompt": "reverse: cabd\n", "completion": "dbac"}`. Learnable from a few dozen examples
//! (the completion uses the prompt's letters, in an order fixed by the prompt), cheap to make
//! in any amount, and scored by the likelihood of the exact reversal.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Letters words are drawn from.
const ALPHABET: &[u8] = b"abcdefgh";

/// `n` examples as JSONL; the first `n - n_eval` are `train`, the rest `eval`.
pub fn reverse_jsonl(seed: u64, n: usize, n_eval: usize) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = String::new();
    for i in 0..n {
        let len = rng.random_range(3..=6);
        let word: String = (0..len)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        let reversed: String = word.chars().rev().collect();
        let split = if i + n_eval >= n { "eval" } else { "train" };
        let line = serde_json::json!({
            "prompt": format!("reverse: {word}\n"),
            "completion": reversed,
            "split": split,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}
