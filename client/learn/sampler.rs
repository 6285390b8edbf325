//! The order in which training examples are visited: a fresh seeded shuffle every epoch.
//!
//! Its whole state (RNG position, current permutation, cursor) goes into the checkpoint, so a
//! resumed run draws exactly the batches an uninterrupted one would.

use crate::format::checkpoint::SamplerState;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Draws batches of example indices, epoch after epoch.
#[derive(Clone, Debug)]
pub struct Sampler {
    seed: u64,
    rng: ChaCha8Rng,
    order: Vec<u32>,
    cursor: usize,
    epoch: u64,
}

impl Sampler {
    /// A sampler over `n` examples, first shuffled from `seed`.
    pub fn new(n: usize, seed: u64) -> Self {
        let mut s = Self {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            order: (0..n as u32).collect(),
            cursor: 0,
            epoch: 0,
        };
        s.reshuffle();
        s
    }

    fn reshuffle(&mut self) {
        self.order.sort_unstable();
        self.order.shuffle(&mut self.rng);
        self.cursor = 0;
        self.epoch += 1;
    }

    /// The next `size` indices, wrapping into a new epoch when one runs out.
    pub fn next_batch(&mut self, size: usize) -> Vec<usize> {
        let mut batch = Vec::with_capacity(size);
        while batch.len() < size {
            if self.cursor == self.order.len() {
                self.reshuffle();
            }
            batch.push(self.order[self.cursor] as usize);
            self.cursor += 1;
        }
        batch
    }

    /// The state to checkpoint.
    pub fn state(&self) -> SamplerState {
        SamplerState {
            seed: self.seed,
            rng_word_pos: self.rng.get_word_pos().to_string(),
            order: self.order.clone(),
            cursor: self.cursor,
            epoch: self.epoch,
        }
    }

    /// Rebuilds a sampler over `n` examples from checkpointed state; the message says what
    /// does not fit.
    pub fn restore(state: &SamplerState, n: usize) -> Result<Self, String> {
        let pos: u128 = state
            .rng_word_pos
            .parse()
            .map_err(|_| format!("rng_word_pos {:?} is not a number", state.rng_word_pos))?;
        let mut sorted = state.order.clone();
        sorted.sort_unstable();
        if sorted != (0..n as u32).collect::<Vec<_>>() || state.cursor > n {
            return Err(format!("sampler state does not describe {n} examples"));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(state.seed);
        rng.set_word_pos(pos);
        Ok(Self {
            seed: state.seed,
            rng,
            order: state.order.clone(),
            cursor: state.cursor,
            epoch: state.epoch,
        })
    }
}
