//! FedYogi (Reddi et al. 2021), as Flower's `FedYogi` (no bias correction):
//! `m ← β1·m + (1−β1)·Δ; v ← v − (1−β2)·Δ²·sign(v − Δ²); x ← x + η·m/(√v + τ)`.
//! Defaults (Flower's): `η = 0.01`, `β1 = 0.9`, `β2 = 0.99`, `τ = 1e-3`.

use super::{ensure, Moments, ServerOptimizer};

/// Yogi on the server.
#[derive(Clone, Debug)]
pub struct FedYogi {
    /// Server learning rate η.
    pub eta: f32,
    /// First-moment decay β1.
    pub beta1: f32,
    /// Second-moment decay β2.
    pub beta2: f32,
    /// Adaptivity τ.
    pub tau: f32,
}

impl Default for FedYogi {
    fn default() -> Self {
        Self {
            eta: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        }
    }
}

impl ServerOptimizer for FedYogi {
    fn step(&self, x: &mut [f32], delta: &[f32], state: &mut Moments, _t: u64) {
        ensure(state, x.len());
        for i in 0..x.len() {
            let d = delta[i];
            let d2 = d * d;
            state.m[i] = self.beta1 * state.m[i] + (1.0 - self.beta1) * d;
            let diff = state.v[i] - d2;
            // sign() as numpy defines it: 0 at 0 (f32::signum gives ±1 there).
            let sign = if diff > 0.0 {
                1.0
            } else if diff < 0.0 {
                -1.0
            } else {
                0.0
            };
            state.v[i] -= (1.0 - self.beta2) * d2 * sign;
            x[i] += self.eta * state.m[i] / (state.v[i].sqrt() + self.tau);
        }
    }
}
