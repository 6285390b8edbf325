//! Server optimizers (FedOpt, Reddi et al. 2021; DiLoCo's outer Nesterov momentum, Douillard et
//! al. 2023): each round, the weighted mean of the clients'
//! deltas is the pseudo-gradient `Δ`, and a strategy turns it into the step applied to the
//! global adapter. One file per strategy, with its equation and defaults (Flower's).
//!
//! All work on flat f32 slices, tensor by tensor; their state (`m`, `v`) is kept per tensor and
//! checkpointed with each global version.

mod choice;
mod diloco;
mod fedadam;
mod fedavg;
mod fedavgm;
mod fedyogi;

pub use choice::Choice;
pub use diloco::DiLoCo;
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
    /// DiLoCo's outer Nesterov momentum.
    Diloco,
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
    /// The optimizer with Flower's defaults, its server learning rate η replaced by `eta`.
    pub fn optimizer_with(self, eta: Option<f32>) -> Box<dyn ServerOptimizer> {
        match self {
            Self::Fedavg => {
                let d = FedAvg::default();
                Box::new(FedAvg {
                    eta: eta.unwrap_or(d.eta),
                })
            }
            Self::Fedavgm => {
                let d = FedAvgM::default();
                Box::new(FedAvgM {
                    eta: eta.unwrap_or(d.eta),
                    ..d
                })
            }
            Self::Fedadam => {
                let d = FedAdam::default();
                Box::new(FedAdam {
                    eta: eta.unwrap_or(d.eta),
                    ..d
                })
            }
            Self::Fedyogi => {
                let d = FedYogi::default();
                Box::new(FedYogi {
                    eta: eta.unwrap_or(d.eta),
                    ..d
                })
            }
            Self::Diloco => {
                let d = DiLoCo::default();
                Box::new(DiLoCo {
                    eta: eta.unwrap_or(d.eta),
                    ..d
                })
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rounds from x = 0 with Δ = 0.5 each, by each strategy with Flower's defaults.
    fn two_rounds(strategy: Strategy) -> (f32, f32) {
        let opt = strategy.optimizer_with(None);
        let mut x = [0.0f32];
        let mut state = Moments::default();
        opt.step(&mut x, &[0.5], &mut state, 1);
        let first = x[0];
        opt.step(&mut x, &[0.5], &mut state, 2);
        (first, x[0])
    }

    fn close(got: f32, want: f64) {
        assert!((got as f64 - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn strategies_match_hand_computed_steps() {
        // FedAvg: x ← x + Δ.
        let (a, b) = two_rounds(Strategy::Fedavg);
        close(a, 0.5);
        close(b, 1.0);
        // FedAvgM, η = 1, β = 0.9: m = 0.5, then 0.95.
        let (a, b) = two_rounds(Strategy::Fedavgm);
        close(a, 0.5);
        close(b, 1.45);
        // FedAdam: m = 0.05, v = 0.0025, η₁ = 0.1·√(1−0.99²)/(1−0.9²) = 0.0742458;
        // then m = 0.095, v = 0.004975, η₂ = 0.1·√(1−0.99³)/(1−0.9³) = 0.0635941.
        let (a, b) = two_rounds(Strategy::Fedadam);
        close(a, 0.0742458 * 0.05 / (0.05 + 1e-9));
        close(
            b,
            a as f64 + 0.0635941 * 0.095 / (0.004975f64.sqrt() + 1e-9),
        );
        // FedYogi, η = 0.01, τ = 1e-3: m = 0.05, v = 0.0025 (sign(0 − 0.25) = −1);
        // then m = 0.095, v = 0.0025 − 0.0025·sign(0.0025 − 0.25) = 0.005.
        let (a, b) = two_rounds(Strategy::Fedyogi);
        close(a, 0.01 * 0.05 / (0.05 + 1e-3));
        close(b, a as f64 + 0.01 * 0.095 / (0.005f64.sqrt() + 1e-3));
        // DiLoCo, η = 0.7, μ = 0.9: m = 0.5, x = 0.7·(0.5 + 0.45) = 0.665;
        // then m = 0.95, x = 0.665 + 0.7·(0.5 + 0.855) = 1.6135.
        let (a, b) = two_rounds(Strategy::Diloco);
        close(a, 0.665);
        close(b, 1.6135);
    }
}
