//! What a training step minimises, for any kind of model: the one thing the training loop
//! (`learn::train`) and the batch splitter (`learn::micro_batch`) know of an objective.

use crate::error::Result;
use candle_core::Tensor;

/// What a step minimises: the loss of some of the training examples, for any kind of model.
pub trait Objective: Sync {
    /// The loss of training examples `picked` (indices into the training split), a scalar that
    /// backpropagates into the optimizer's variables, and how many units it counted (completion
    /// tokens for a decoder, examples for a classifier).
    fn loss(&self, picked: &[usize]) -> Result<(Tensor, usize)>;

    /// Whether the loss of a batch is the count-weighted mean of the losses of any split of
    /// it, so that [`crate::learn::micro_batch`] may compute its parts apart. Not so where examples
    /// meet in the loss (in-batch negatives).
    fn separable(&self) -> bool {
        false
    }
}
