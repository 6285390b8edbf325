//! A training batch's loss and gradients, computed in fixed parts side by side.
//!
//! One step of a decoder is some 900 products and many more small element-wise ops, each one
//! op of one graph. Run as one graph, the products fork across the threads and join again
//! hundreds of times, and between them the element-wise ops run on one thread while the others
//! wait: on Gemma 3 270M with 2 threads, one thread was alone for about a quarter of each step.
//! Cut into [`PARTS`] parts of whole sequences, each part's forward and backward pass is a graph
//! of its own on a thread of its own, and the waits of one part are filled by the other's work.
//!
//! The parts depend only on the batch, never on the thread count, and their gradients are
//! combined in part order, so a step gives the same bits on any number of threads. The batch's
//! loss is the mean over its counted units; each part's gradient is weighted by its share of
//! them. Only objectives whose loss separates that way ([`Objective::separable`]) are cut.

use crate::error::Result;
use crate::learn::objective::Objective;
use crate::learn::optim::AdamW;
use candle_core::Tensor;
use rayon::prelude::*;

/// Parts a separable batch is cut into: two fill the two cores of a small volunteer machine;
/// on more threads, each part's products still spread over them. Every extra part costs one
/// more pass over the output head's table.
pub const PARTS: usize = 2;

/// The loss of one batch and the gradient of every trained parameter.
pub struct BatchGradients {
    /// The batch's loss (mean over its counted units).
    pub loss: f32,
    /// Units the loss counted (completion tokens for a decoder, examples for a classifier).
    pub counted: usize,
    /// Gradients in the optimizer's parameter order.
    pub grads: Vec<Tensor>,
}

/// The loss and gradients of `objective` on the training examples `picked`.
pub fn batch_gradients(
    objective: &dyn Objective,
    picked: &[usize],
    params: &AdamW,
) -> Result<BatchGradients> {
    if !objective.separable() || picked.len() < 2 {
        let (loss, counted) = objective.loss(picked)?;
        let grads = params.gradients(&loss.backward()?)?;
        return Ok(BatchGradients {
            loss: loss.to_scalar::<f32>()?,
            counted,
            grads,
        });
    }
    let parts = parts(picked);
    let done: Vec<Result<(f32, usize, Vec<Tensor>)>> = parts
        .par_iter()
        .map(|part| {
            let (loss, counted) = objective.loss(part)?;
            let grads = params.gradients(&loss.backward()?)?;
            Ok((loss.to_scalar::<f32>()?, counted, grads))
        })
        .collect();
    let done = done.into_iter().collect::<Result<Vec<_>>>()?;
    combine(done)
}

/// `items` in [`PARTS`] runs of (nearly) equal length, in order (fewer when there are fewer
/// items).
pub(crate) fn parts<T>(items: &[T]) -> Vec<&[T]> {
    items.chunks(items.len().div_ceil(PARTS).max(1)).collect()
}

/// The batch's loss and gradients from its parts' means, each weighted by its count.
fn combine(parts: Vec<(f32, usize, Vec<Tensor>)>) -> Result<BatchGradients> {
    let counted: usize = parts.iter().map(|p| p.1).sum();
    let weight = |n: usize| n as f64 / counted.max(1) as f64;
    let loss = parts
        .iter()
        .map(|(loss, n, _)| *loss as f64 * weight(*n))
        .sum::<f64>() as f32;
    let mut grads: Option<Vec<Tensor>> = None;
    for (_, n, part) in parts {
        let scaled = part
            .iter()
            .map(|g| g * weight(n))
            .collect::<candle_core::Result<Vec<_>>>()?;
        grads = Some(match grads {
            None => scaled,
            Some(sum) => sum
                .iter()
                .zip(&scaled)
                .map(|(a, b)| a + b)
                .collect::<candle_core::Result<Vec<_>>>()?,
        });
    }
    Ok(BatchGradients {
        loss,
        counted,
        grads: grads.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::mlp_base::adam;
    use crate::test_util::on_threads;
    use candle_core::{Device, Var};
    use std::sync::Mutex;

    /// A weighted least-squares fit: example `i` counts `1 + i % 3` units, and the loss is
    /// the count-weighted mean of `(w·xᵢ − yᵢ)²`. Records the runs of examples it was given.
    struct Fit {
        w: Var,
        x: Tensor,
        y: Tensor,
        separable: bool,
        calls: Mutex<Vec<Vec<usize>>>,
    }

    impl Fit {
        fn new(separable: bool) -> Self {
            let dev = Device::Cpu;
            Self {
                w: Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, 5), &dev).unwrap()).unwrap(),
                x: Tensor::randn(0f32, 1.0, (9, 5), &dev).unwrap(),
                y: Tensor::randn(0f32, 1.0, 9, &dev).unwrap(),
                separable,
                calls: Mutex::new(Vec::new()),
            }
        }

        fn params(&self) -> AdamW {
            AdamW::new(vec![("w".into(), self.w.clone())], adam(0.1, 0, 9)).unwrap()
        }
    }

    impl Objective for Fit {
        fn loss(&self, picked: &[usize]) -> Result<(Tensor, usize)> {
            self.calls.lock().unwrap().push(picked.to_vec());
            let dev = Device::Cpu;
            let ids = Tensor::new(picked.iter().map(|&i| i as u32).collect::<Vec<_>>(), &dev)?;
            let counts: Vec<f32> = picked.iter().map(|&i| (1 + i % 3) as f32).collect();
            let n = counts.iter().sum::<f32>() as usize;
            let counts = Tensor::new(counts, &dev)?;
            let pred = self
                .x
                .index_select(&ids, 0)?
                .matmul(&self.w.t()?)?
                .squeeze(1)?;
            let err = (pred - self.y.index_select(&ids, 0)?)?.sqr()?;
            Ok((((err * counts)?.sum_all()? / n as f64)?, n))
        }

        fn separable(&self) -> bool {
            self.separable
        }
    }

    fn values(g: &BatchGradients) -> (f32, usize, Vec<f32>) {
        let grad = g.grads[0].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (g.loss, g.counted, grad)
    }

    #[test]
    fn the_parts_give_the_loss_and_gradient_of_the_whole_batch() {
        let fit = Fit::new(true);
        let picked = [4, 0, 7, 2, 8];
        let parts = values(&batch_gradients(&fit, &picked, &fit.params()).unwrap());
        assert_eq!(
            fit.calls.lock().unwrap().clone(),
            vec![vec![4, 0, 7], vec![2, 8]]
        );
        let whole = Fit {
            separable: false,
            ..fit
        };
        let one = values(&batch_gradients(&whole, &picked, &whole.params()).unwrap());
        assert_eq!(parts.1, one.1);
        assert!((parts.0 - one.0).abs() < 1e-5, "{} vs {}", parts.0, one.0);
        for (a, b) in parts.2.iter().zip(&one.2) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn a_loss_that_does_not_separate_sees_the_whole_batch() {
        let fit = Fit::new(false);
        batch_gradients(&fit, &[3, 1, 5, 6], &fit.params()).unwrap();
        assert_eq!(fit.calls.lock().unwrap().clone(), vec![vec![3, 1, 5, 6]]);
    }

    #[test]
    fn the_result_does_not_depend_on_the_thread_count() {
        let fit = Fit::new(true);
        let run = |threads: usize| {
            on_threads(threads, || {
                values(&batch_gradients(&fit, &[8, 6, 1, 3], &fit.params()).unwrap())
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }
}
