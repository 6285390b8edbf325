//! The skills' synthetic tasks: prompt/completion pairs the project makes in any amount, from a
//! seed, so a work unit's data and the server's held-out set are reproducible and never
//! downloaded. Each task kind (a manifest's `task.kind`) makes distinct examples; the JSONL
//! writing is shared.

pub mod digits;
pub mod reverse;
pub mod spell;

pub use reverse::{reverse_jsonl, reverse_lines, reverse_words};
use std::collections::HashSet;

/// One example: what the model reads and what it must write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    /// The prompt, ending in a newline.
    pub prompt: String,
    /// The reference completion.
    pub completion: String,
}

/// The JSONL lines of `pairs`; the last `n_eval` are marked `eval`, the rest `train`.
pub fn jsonl(pairs: &[Pair], n_eval: usize) -> String {
    let mut out = String::new();
    for (i, pair) in pairs.iter().enumerate() {
        let split = if i + n_eval >= pairs.len() {
            "eval"
        } else {
            "train"
        };
        let line = serde_json::json!({
            "prompt": pair.prompt,
            "completion": pair.completion,
            "split": split,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// `n` distinct examples of task `kind` from `seed`, none of whose prompts is in `exclude`;
/// `None` for a kind no recipe makes.
pub fn examples(kind: &str, seed: u64, n: usize, exclude: &HashSet<String>) -> Option<Vec<Pair>> {
    Some(match kind {
        "reverse" => reverse::pairs(seed, n, exclude),
        "spell_digits" => spell::pairs(seed, n, exclude),
        _ => return None,
    })
}
