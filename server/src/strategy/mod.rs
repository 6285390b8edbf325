//! Server optimizers (FedOpt, Reddi et al. 2021): each round, the weighted mean of the clients'
//! deltas is the pseudo-gradient `Δ`, and a strategy turns it into the step applied to the
//! global adapter. One file per strategy, with its equation and defaults (Flower's).
//!
//! All work on flat f32 slices, tensor by tensor; their state (`m`, `v`) is kept per tensor and
//! checkpointed with each global version.

mod fedadam;
mod fedavg;
mod fedavgm;
mod fedyogi;

pub use fedadam::FedAdam;
pub use fedavg::FedAvg;
pub use fedavgm::FedAvgM;
pub use fedyogi::FedYogi;

/// The strategies `aggregate --strategy` offers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Plain averaging.
    Fedavg,
    /// Averaging with server momentum.
    Fedavgm,
    /// Adam on the server.
    Fedadam,
    /// Yogi on the server.
    Fedyogi,
}

/// Per-tensor optimizer state: first and second moments (empty when unused).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Moments {
    /// First moment.
    pub m: Vec<f32>,
    /// Second moment.
    pub v: Vec<f32>,
}

/// A server optimizer: updates `x` in place from the pseudo-gradient `delta`.
pub trait ServerOptimizer {
    /// One step on one tensor at round `t` (1-based).
    fn step(&self, x: &mut [f32], delta: &[f32], state: &mut Moments, t: u64);
}

impl Strategy {
    /// The optimizer with Flower's default hyper-parameters.
    pub fn optimizer(self) -> Box<dyn ServerOptimizer> {
        match self {
            Self::Fedavg => Box::new(FedAvg::default()),
            Self::Fedavgm => Box::new(FedAvgM::default()),
            Self::Fedadam => Box::new(FedAdam::default()),
            Self::Fedyogi => Box::new(FedYogi::default()),
        }
    }
}

/// Sizes `state` for a tensor of `n` values (zeros on the first round).
pub(crate) fn ensure(state: &mut Moments, n: usize) {
    if state.m.len() != n {
        state.m = vec![0.0; n];
    }
    if state.v.len() != n {
        state.v = vec![0.0; n];
    }
}
