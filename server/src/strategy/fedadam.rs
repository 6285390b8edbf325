//! FedAdam (Reddi et al. 2021), exactly as Flower's `FedAdam` (flwr 1.42), with its bias
//! correction folded into the step size:
//! `m ← β1·m + (1−β1)·Δ; v ← β2·v + (1−β2)·Δ²;
//!  η_t = η·√(1−β2^(t+1))/(1−β1^(t+1)); x ← x + η_t·m/(√v + τ)`.
//! Flower raises the betas to `server_round + 1`, one more than textbook Adam's `t`, so round 1
//! steps by `0.7425·η` rather than `η`. We keep Flower's exponent, so the two agree to f32
//! rounding (the aggregation bench compares them on the same deltas).
//! Defaults (Flower's): `η = 0.1`, `β1 = 0.9`, `β2 = 0.99`, `τ = 1e-9`.

use super::{ensure, Moments, ServerOptimizer};

/// Adam on the server.
#[derive(Clone, Debug)]
pub struct FedAdam {
    /// Server learning rate η.
    pub eta: f32,
    /// First-moment decay β1.
    pub beta1: f32,
    /// Second-moment decay β2.
    pub beta2: f32,
    /// Adaptivity τ.
    pub tau: f32,
}

impl Default for FedAdam {
    fn default() -> Self {
        Self {
            eta: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-9,
        }
    }
}

impl ServerOptimizer for FedAdam {
    fn step(&self, x: &mut [f32], delta: &[f32], state: &mut Moments, t: u64) {
        ensure(state, x.len());
        let t = t as i32 + 1;
        let eta_t = self.eta * (1.0 - self.beta2.powi(t)).sqrt() / (1.0 - self.beta1.powi(t));
        for i in 0..x.len() {
            let d = delta[i];
            state.m[i] = self.beta1 * state.m[i] + (1.0 - self.beta1) * d;
            state.v[i] = self.beta2 * state.v[i] + (1.0 - self.beta2) * d * d;
            x[i] += eta_t * state.m[i] / (state.v[i].sqrt() + self.tau);
        }
    }
}
