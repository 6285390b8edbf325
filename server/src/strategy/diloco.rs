//! DiLoCo's outer optimizer (Douillard et al. 2023, "DiLoCo: Distributed Low-Communication
//! Training of Language Models"): Nesterov momentum on the outer gradient, the negated mean
//! delta. Written for the delta `Δ` (the step the clients took):
//! `m ← μ·m + Δ; x ← x + η·(Δ + μ·m)`, which is PyTorch's `SGD(nesterov=True)` on
//! `g = −Δ`. Defaults are the paper's, `η = 0.7`, `μ = 0.9` (its inner optimizer is AdamW, as
//! the app's is).

use super::{ensure, Moments, ServerOptimizer};

/// Nesterov momentum on the outer gradient.
#[derive(Clone, Debug)]
pub struct DiLoCo {
    /// Outer learning rate η.
    pub eta: f32,
    /// Momentum μ.
    pub momentum: f32,
}

impl Default for DiLoCo {
    fn default() -> Self {
        Self {
            eta: 0.7,
            momentum: 0.9,
        }
    }
}

impl ServerOptimizer for DiLoCo {
    fn step(&self, x: &mut [f32], delta: &[f32], state: &mut Moments, _t: u64) {
        ensure(state, x.len());
        for ((xi, di), mi) in x.iter_mut().zip(delta).zip(state.m.iter_mut()) {
            *mi = self.momentum * *mi + di;
            *xi += self.eta * (di + self.momentum * *mi);
        }
    }
}
