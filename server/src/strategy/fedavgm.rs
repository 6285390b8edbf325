//! FedAvgM (Hsu et al. 2019): `m ← β·m + Δ; x ← x + η·m`. Defaults are Hsu et al.'s,
//! `η = 1`, `β = 0.9` (Flower's `FedAvgM` defaults to no momentum at all). No bias correction.
//! With whole local runs as deltas the momentum overshoots in the first rounds, which is why
//! `aggregate` defaults to FedAvg.

use super::{ensure, Moments, ServerOptimizer};

/// Averaging with server momentum.
#[derive(Clone, Debug)]
pub struct FedAvgM {
    /// Server learning rate η.
    pub eta: f32,
    /// Momentum β.
    pub beta: f32,
}

impl Default for FedAvgM {
    fn default() -> Self {
        Self {
            eta: 1.0,
            beta: 0.9,
        }
    }
}

impl ServerOptimizer for FedAvgM {
    fn step(&self, x: &mut [f32], delta: &[f32], state: &mut Moments, _t: u64) {
        ensure(state, x.len());
        for ((xi, di), mi) in x.iter_mut().zip(delta).zip(state.m.iter_mut()) {
            *mi = self.beta * *mi + di;
            *xi += self.eta * *mi;
        }
    }
}
