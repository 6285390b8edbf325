//! The planner's reward, `plan_success`: the decoder writes a plan for each grid problem
//! (greedily, [`crate::learn::generate`]) and the simulator ([`crate::task::grid`]) judges it. The
//! reward is the fraction of problems whose plan it accepts; the fraction whose plan is also as
//! short as possible is the second figure.

use crate::error::Result;
use crate::learn::generate;
use crate::nn::model::Decoder;
use crate::task::grid::Problem;
use crate::text::data::Sequence;
use crate::text::tokenizer::Tokenizer;
use candle_core::Device;

/// The reward kind of a planner's work unit.
pub const REWARD_KIND: &str = crate::format::config::reward_kind::PLAN_SUCCESS;
/// Most tokens a plan may take (one per move; a walk around 3 walls of a 5×5 grid takes at
/// most 12 moves).
const MAX_PLAN_TOKENS: usize = 14;

/// How a set of problems fared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanScore {
    /// Fraction of problems whose generated plan the simulator accepts (the reward).
    pub accepted: f64,
    /// Fraction whose plan is accepted and as short as possible.
    pub optimal: f64,
}

/// Generates a plan for the prompt of each of `seqs` (`batch_size` at a time, no sequence past
/// `max_len` tokens) and judges it.
pub fn score(
    model: &dyn Decoder,
    tok: &dyn Tokenizer,
    seqs: &[Sequence],
    batch_size: usize,
    max_len: usize,
    device: &Device,
) -> Result<PlanScore> {
    if seqs.is_empty() {
        return Ok(PlanScore {
            accepted: 0.0,
            optimal: 0.0,
        });
    }
    let (mut accepted, mut optimal) = (0usize, 0usize);
    for chunk in seqs.chunks(batch_size.max(1)) {
        let prompts: Vec<Vec<u32>> = chunk
            .iter()
            .map(|s| s.ids[..s.completion_start].to_vec())
            .collect();
        let plans = generate::greedy(
            model,
            &prompts,
            tok.eos(),
            tok.pad(),
            MAX_PLAN_TOKENS,
            max_len,
            device,
        )?;
        for (prompt, plan) in prompts.iter().zip(plans) {
            let text = tok.decode(&prompt[1..]);
            // A prompt that is not a grid problem cannot be solved: it counts as a failure.
            let Ok(problem) = Problem::parse(text.trim_start()) else {
                continue;
            };
            let verdict = problem.check(&tok.decode(&plan));
            accepted += usize::from(verdict.accepted);
            optimal += usize::from(verdict.optimal);
        }
    }
    let n = seqs.len() as f64;
    Ok(PlanScore {
        accepted: accepted as f64 / n,
        optimal: optimal as f64 / n,
    })
}
