//! Helpers shared by the unit tests of the custom ops.

use candle_core::backprop::GradStore;
use candle_core::Tensor;

/// The gradients of `Σ weights ⊙ y` (a random weighting tests every output's gradient at once).
pub(crate) fn weighted_backward(y: &Tensor, weights: &Tensor) -> GradStore {
    (y * weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
}

/// The largest absolute difference between `a` and `b`.
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// `f`'s result when run on a rayon pool of `threads` threads (for tests that compare results
/// across thread counts).
pub(crate) fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(f)
}
