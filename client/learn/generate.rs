//! Greedy generation with a decoder: the continuation of prompts, one token at a time, each
//! the highest logit after the sequence so far. Deterministic for a given model and thread
//! count, so the app and the validator generate the same text.
//!
//! Prompts are batched, right-padded; a causal decoder's position never sees the padding after
//! it, so each row reads the hidden state of its own last token. A decoder that keeps a
//! key/value cache ([`Decoder::incremental`]) then computes one token per row and step; any
//! other runs the whole sequence again at each step.

use crate::error::Result;
use crate::nn::model::kv_cache::KvCache;
use crate::nn::model::Decoder;
use candle_core::{Device, Tensor, D};

/// The greedy continuations of `prompts` (token ids, BOS included): at most `max_new` tokens
/// each, and never past `max_len` tokens in all; a continuation ends before `eos`, which it
/// does not include. Finished rows leave the batch.
pub fn greedy(
    model: &dyn Decoder,
    prompts: &[Vec<u32>],
    eos: u32,
    pad: u32,
    max_new: usize,
    max_len: usize,
    device: &Device,
) -> Result<Vec<Vec<u32>>> {
    let mut seqs: Vec<Vec<u32>> = prompts.to_vec();
    // The rows still generating, as indices into `seqs`, in the batch's (and cache's) order.
    let mut live: Vec<usize> = (0..seqs.len())
        .filter(|&i| seqs[i].len() < max_len)
        .collect();
    let mut cache: Option<KvCache> = None;
    for _ in 0..max_new {
        if live.is_empty() {
            break;
        }
        let rows = match (cache.as_mut(), model.incremental()) {
            (Some(cache), Some(incremental)) => {
                let newest = live.iter().map(|&i| *seqs[i].last().expect("grown"));
                let tokens = Tensor::from_iter(newest, device)?.unsqueeze(1)?;
                let hidden = incremental.extend(&tokens, cache)?.detach();
                hidden.reshape(((), hidden.dim(D::Minus1)?))?
            }
            (_, incremental) => {
                let (tokens, last) = right_padded(&seqs, &live, pad, device)?;
                let hidden = match incremental {
                    Some(incremental) => {
                        let lens: Vec<usize> = live.iter().map(|&i| seqs[i].len()).collect();
                        let (hidden, prefilled) = incremental.prefill(&tokens, &lens)?;
                        cache = Some(prefilled);
                        hidden
                    }
                    None => model.hidden(&tokens)?,
                }
                .detach();
                hidden
                    .reshape(((), hidden.dim(D::Minus1)?))?
                    .index_select(&last, 0)?
            }
        };
        let next = model.head(&rows)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let mut kept = Vec::with_capacity(live.len());
        for (row, (&i, token)) in live.iter().zip(next).enumerate() {
            if token != eos {
                seqs[i].push(token);
                if seqs[i].len() < max_len {
                    kept.push(row);
                }
            }
        }
        if kept.len() < live.len() {
            if let Some(cache) = cache.as_mut() {
                cache.keep(&kept)?;
            }
            live = kept.iter().map(|&r| live[r]).collect();
        }
    }
    Ok(seqs
        .into_iter()
        .zip(prompts)
        .map(|(s, p)| s[p.len()..].to_vec())
        .collect())
}

/// The sequences `rows` of `seqs` (at least one) right-padded with `pad` into a (rows, width)
/// batch, and the flat index of each row's last real token in it.
fn right_padded(
    seqs: &[Vec<u32>],
    rows: &[usize],
    pad: u32,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let width = rows
        .iter()
        .map(|&i| seqs[i].len())
        .max()
        .expect("non-empty");
    let mut ids = Vec::with_capacity(rows.len() * width);
    let mut last = Vec::with_capacity(rows.len());
    for (row, &i) in rows.iter().enumerate() {
        ids.extend(seqs[i].iter().copied());
        ids.extend(std::iter::repeat_n(pad, width - seqs[i].len()));
        last.push((row * width + seqs[i].len() - 1) as u32);
    }
    Ok((
        Tensor::from_vec(ids, (rows.len(), width), device)?,
        Tensor::new(last, device)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::adapter::LoraSpec;
    use crate::format::gguf::Gguf;
    use crate::format::tensors::NamedTensors;
    use crate::nn::model::tiny::{tiny_config, write_tiny_model, TinyQuant};
    use crate::nn::model::{self, ModelOptions, WeightMode};

    #[test]
    fn batched_greedy_equals_the_argmax_of_each_prompt_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        write_tiny_model(&path, 0, TinyQuant::Q8_0).unwrap();
        let mut g = Gguf::open(&path).unwrap();
        let none = LoraSpec::none();
        let factors = NamedTensors::new();
        let device = Device::Cpu;
        let decoder = model::load(
            &crate::format::config::Architecture::Llama(tiny_config()),
            &mut g,
            &ModelOptions {
                weights: WeightMode::DenseF32,
                lora: &none,
                factors: &factors,
                max_seq_len: 32,
                device: &device,
            },
        )
        .unwrap();
        let prompts: Vec<Vec<u32>> =
            vec![vec![256, 104, 105], vec![256, 97], vec![256, 1, 2, 3, 4]];
        let batched = greedy(decoder.as_ref(), &prompts, 257, 258, 6, 32, &device).unwrap();
        for (prompt, got) in prompts.iter().zip(&batched) {
            // One prompt alone, each token the argmax of the full logits at the last position.
            let mut seq = prompt.clone();
            for _ in 0..6 {
                let ids = Tensor::new(seq.as_slice(), &device)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap();
                let logits = decoder.forward(&ids).unwrap().squeeze(0).unwrap();
                let last = logits.get(seq.len() - 1).unwrap();
                let next = last.argmax(D::Minus1).unwrap().to_scalar::<u32>().unwrap();
                if next == 257 {
                    break;
                }
                seq.push(next);
            }
            assert_eq!(got, &seq[prompt.len()..].to_vec(), "prompt {prompt:?}");
        }
        let capped = greedy(decoder.as_ref(), &prompts, 257, 258, 6, 5, &device).unwrap();
        for (prompt, got) in prompts.iter().zip(&capped) {
            assert!(prompt.len() + got.len() <= 5.max(prompt.len()), "{got:?}");
        }
    }
}
