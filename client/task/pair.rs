//! One prompt/completion example of a synthetic task, and the JSONL lines a work unit's data
//! and the server's held-out set are written as.

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
