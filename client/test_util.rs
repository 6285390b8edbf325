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
