//! FedAvg (McMahan et al. 2017): `x ← x + η·Δ`. Default `η = 1` (the plain mean of the
//! clients' updates).

use super::{Moments, ServerOptimizer};

/// Plain averaging with a server learning rate.
#[derive(Clone, Debug)]
pub struct FedAvg {
    /// Server learning rate η.
    pub eta: f32,
}

impl Default for FedAvg {
    fn default() -> Self {
        Self { eta: 1.0 }
    }
}

impl ServerOptimizer for FedAvg {
    fn step(&self, x: &mut [f32], delta: &[f32], _state: &mut Moments, _t: u64) {
        for (xi, di) in x.iter_mut().zip(delta) {
            *xi += self.eta * di;
        }
    }
}
