//! The language skill's task: spell a number digit by digit in English words.
//!
//! `{"prompt": "Spell each digit: 4071\n", "completion": "four zero seven one"}`. A real model
//! knows the words but not this format, so a few dozen steps of LoRA raise the likelihood of
//! the exact reference clearly; the reference is fixed by the prompt, so the server recomputes
//! the reward from the text alone.

use crate::task::pair::Pair;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// The digits' names, by value.
const NAMES: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];
/// What every prompt starts with.
const PREFIX: &str = "Spell each digit: ";

/// The example for `number` (its digits as written).
pub fn pair(number: &str) -> Pair {
    let words: Vec<&str> = number
        .bytes()
        .map(|d| NAMES[usize::from(d - b'0')])
        .collect();
    Pair {
        prompt: format!("{PREFIX}{number}\n"),
        completion: words.join(" "),
    }
}

/// `n` distinct examples (numbers of 3–6 digits) from `seed`, none of whose prompts is in
/// `exclude`.
pub fn pairs(seed: u64, n: usize, exclude: &HashSet<String>) -> Vec<Pair> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = rng.random_range(3..=6);
        let number: String = (0..len)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        let p = pair(&number);
        if !exclude.contains(&p.prompt) && seen.insert(number) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_every_digit_in_order() {
        let p = pair("40719");
        assert_eq!(p.prompt, "Spell each digit: 40719\n");
        assert_eq!(p.completion, "four zero seven one nine");
    }

    #[test]
    fn pools_are_distinct_reproducible_and_respect_exclusions() {
        let a = pairs(7, 200, &HashSet::new());
        assert_eq!(a, pairs(7, 200, &HashSet::new()));
        let prompts: HashSet<String> = a.iter().map(|p| p.prompt.clone()).collect();
        assert_eq!(prompts.len(), 200);
        let b = pairs(8, 200, &prompts);
        assert!(b.iter().all(|p| !prompts.contains(&p.prompt)));
    }
}
