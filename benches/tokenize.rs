//! Tokenization's share of a work unit: the time to build each skill's tokenizer from its base
//! (what the app does once per start) and to encode a work unit's data (every prompt and
//! completion of a shard and its eval split, as the skills' recipes make them), median of 5.
//!
//! `models/gemma3-270m/fetch.sh && models/minilm/fetch.sh && cargo bench --bench tokenize`

use aginet::format::gguf::Gguf;
use aginet::task::{examples, Pair, Split};
use aginet::text::tokenizer::Tokenizer;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const REPEATS: usize = 5;

fn main() {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let gemma = models.join("gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    assert!(gemma.exists(), "run models/gemma3-270m/fetch.sh first");
    let vocab = models.join("minilm/model/vocab.txt");
    assert!(vocab.exists(), "run models/minilm/fetch.sh first");

    println!("| skill | tokenizer | build (ms) | work unit's data | encode (ms) | tokens |");
    println!("|---|---|---|---|---|---|");
    for (skill, kind, n) in [
        ("language", "spell_digits", 72),
        ("planner", "grid_plans", 72),
    ] {
        let (build, tok) = timed(|| {
            aginet::text::from_gguf(&Gguf::open(&gemma).expect("the Gemma base opens"))
                .expect("its tokenizer builds")
        });
        report(
            skill,
            "Gemma 3 (GGUF)",
            build,
            tok.as_ref(),
            &pairs(&models, kind, n),
        );
    }
    let tokens: Vec<String> = std::fs::read_to_string(&vocab)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let (build, tok) = timed(|| minilm(tokens.clone()));
    report(
        "memory",
        "MiniLM (vocab)",
        build,
        tok.as_ref(),
        &pairs(&models, "codenames", 192),
    );
}

/// BERT's WordPiece over MiniLM's vocabulary, in id order.
fn minilm(tokens: Vec<String>) -> Box<dyn Tokenizer> {
    Box::new(aginet::text::wordpiece::from_tokens(tokens).expect("MiniLM's vocabulary"))
}

/// `n` examples of task `kind`, as a work unit's shard and eval split hold them.
fn pairs(models: &Path, kind: &str, n: usize) -> Vec<Pair> {
    examples(kind, Split::Pool, 7, n, &HashSet::new(), models)
        .expect("the recipe runs")
        .expect("a recipe of this kind")
}

/// The median time of `REPEATS` runs of `f`, and its last result.
fn timed<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(REPEATS);
    let mut last = None;
    for _ in 0..REPEATS {
        let start = Instant::now();
        last = Some(std::hint::black_box(f()));
        times.push(start.elapsed());
    }
    times.sort();
    (times[REPEATS / 2], last.unwrap())
}

fn report(skill: &str, name: &str, build: Duration, tok: &dyn Tokenizer, data: &[Pair]) {
    let (encode, tokens) = timed(|| {
        data.iter()
            .map(|p| tok.encode(&p.prompt).len() + tok.encode(&p.completion).len())
            .sum::<usize>()
    });
    println!(
        "| {skill} | {name} | {:.1} | {} examples | {:.2} | {tokens} |",
        build.as_secs_f64() * 1e3,
        data.len(),
        encode.as_secs_f64() * 1e3
    );
}
