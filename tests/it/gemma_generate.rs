//! Greedy generation with the Gemma 3 key/value cache against the same decoder run over the
//! whole sequence at every step, on the real base (`models/gemma3-270m/fetch.sh`, which
//! `ci/setup.sh` runs), for prompts of different lengths batched together: the same tokens, and
//! the cached steps' hidden states equal to the full pass's at the same positions.

use super::fixture::gemma_base;
use aginet::format::adapter::LoraSpec;
use aginet::format::gguf::Gguf;
use aginet::learn::generate::greedy;
use aginet::nn::frozen::FrozenMode;
use aginet::nn::model::gemma3::{Gemma3, Gemma3Options};
use aginet::nn::model::{Decoder, WeightMode};
use aginet::text::tokenizer::Tokenizer;
use candle_core::{Device, Tensor};
use std::time::Instant;

/// The decoder without its cache: [`greedy`] then runs the whole sequence at every step.
struct Uncached<'a>(&'a Gemma3);

impl Decoder for Uncached<'_> {
    fn hidden(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        self.0.hidden(tokens)
    }
    fn head(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        self.0.head(hidden)
    }
    fn nll_rows(&self, hidden: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
        self.0.nll_rows(hidden, targets)
    }
}

const PROMPTS: [&str; 3] = [
    "Grid 4x4. Start 1,2. Goal 3,4, 2 down 2 right. Walls 2,2.\nPlan:",
    "The capital of France is",
    "1, 2, 3, 4, 5,",
];

/// The base with its weights held as `weights`, its tokenizer, and [`PROMPTS`] as token ids.
fn gemma(weights: WeightMode) -> (Gemma3, Box<dyn Tokenizer>, Vec<Vec<u32>>) {
    let mut g = Gguf::open(&gemma_base()).unwrap();
    let tok = aginet::text::from_gguf(&g).unwrap();
    let model = Gemma3::from_gguf(
        &mut g,
        &Gemma3Options {
            expected: None,
            weights,
            lora: &LoraSpec::none(),
            factors: &Default::default(),
            max_seq_len: 64,
            device: &Device::Cpu,
        },
    )
    .unwrap();
    let prompts = PROMPTS
        .iter()
        .map(|p| std::iter::once(tok.bos()).chain(tok.encode(p)).collect())
        .collect();
    (model, tok, prompts)
}

/// With the quantized kernels the planner runs: the same tokens, within `max_new` and
/// `max_len`.
#[test]
fn cached_generation_equals_running_the_whole_sequence() {
    let device = Device::Cpu;
    let (model, tok, prompts) = gemma(WeightMode::Quantized(FrozenMode::default()));
    let longest = prompts.iter().map(Vec::len).max().unwrap();
    let generate = |model: &dyn Decoder, max_new, max_len| {
        let started = Instant::now();
        let out = greedy(
            model,
            &prompts,
            tok.eos(),
            tok.pad(),
            max_new,
            max_len,
            &device,
        );
        (out.unwrap(), started.elapsed().as_secs_f64())
    };
    for (max_new, max_len) in [(8, 64), (8, longest + 3)] {
        let (cached, cached_s) = generate(&model, max_new, max_len);
        let (whole, whole_s) = generate(&Uncached(&model), max_new, max_len);
        eprintln!("cached {cached_s:.2} s, the whole sequence every step {whole_s:.2} s");
        for ((prompt, a), b) in PROMPTS.iter().zip(&cached).zip(&whole) {
            eprintln!("{prompt:?} -> {:?}", tok.decode(a));
            assert_eq!(a, b, "{prompt:?}, at most {max_new} new, {max_len} in all");
        }
        for (p, c) in prompts.iter().zip(&cached) {
            assert!(p.len() + c.len() <= max_len.max(p.len()));
        }
        assert!(cached.iter().any(|c| c.len() == max_new), "{cached:?}");
    }
}

/// With f32 weights, so that only float rounding separates the two (the quantized kernels
/// round activations to 8 bits, which turns rounding differences into 1% ones): the hidden
/// states of two cached steps after the prompts equal the full pass's over each prompt and its
/// first generated tokens.
#[test]
fn cached_hidden_states_equal_the_full_pass() {
    let device = Device::Cpu;
    let (model, tok, prompts) = gemma(WeightMode::DenseF32);
    let width = prompts.iter().map(Vec::len).max().unwrap();
    let lens: Vec<usize> = prompts.iter().map(Vec::len).collect();
    let padded: Vec<u32> = prompts
        .iter()
        .flat_map(|p| {
            p.iter()
                .copied()
                .chain(std::iter::repeat_n(tok.pad(), width - p.len()))
        })
        .collect();
    let incremental = model.incremental().expect("Gemma keeps a cache");
    let tokens = Tensor::from_vec(padded, (prompts.len(), width), &device).unwrap();
    let (_, mut cache) = incremental.prefill(&tokens, &lens).unwrap();
    let next = greedy(&model, &prompts, tok.eos(), tok.pad(), 2, 64, &device).unwrap();
    for step in 0..2 {
        let new: Vec<u32> = next.iter().map(|n| n[step]).collect();
        let input = Tensor::from_vec(new, (prompts.len(), 1), &device).unwrap();
        let stepped = incremental.extend(&input, &mut cache).unwrap();
        for (row, prompt) in prompts.iter().enumerate() {
            let mut seq = prompt.clone();
            seq.extend(&next[row][..=step]);
            let ids = Tensor::new(seq.as_slice(), &device).unwrap();
            let full = model.hidden(&ids.unsqueeze(0).unwrap()).unwrap();
            let full = full.get(0).unwrap().get(seq.len() - 1).unwrap();
            let ours = stepped.get(row).unwrap().get(0).unwrap();
            let largest = |t: Tensor| t.abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            let (diff, scale) = (largest((&ours - &full).unwrap()), largest(full));
            eprintln!("row {row} step {step}: largest difference {diff:.2e} of {scale:.2e}");
            assert!(
                diff <= 1e-5 * scale,
                "row {row} step {step}: {diff} of {scale}"
            );
        }
    }
}
