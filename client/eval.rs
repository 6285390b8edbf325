//! Loss and reward, shared by the app (its own eval split) and the validator (held-out data).
//!
//! The loss is the mean negative log-likelihood of the completion tokens. The reward of the
//! `token_likelihood` kind is `exp(-loss)`: the geometric mean probability the model gives the
//! reference completion, in (0, 1], higher is better.

use crate::data::{Batch, Sequence};
use crate::model::llama::Llama;
use candle_core::{Device, Tensor, D};

/// Mean NLL over the batch's weighted positions, as a scalar tensor that backpropagates.
pub fn batch_loss(model: &Llama, batch: &Batch) -> candle_core::Result<Tensor> {
    let (sum, _) = batch_nll_sum(model, batch)?;
    sum / batch.n_tokens.max(1) as f64
}

/// Sum of NLL over the weighted positions, and their count.
fn batch_nll_sum(model: &Llama, batch: &Batch) -> candle_core::Result<(Tensor, usize)> {
    let logits = model.forward(&batch.inputs)?;
    let vocab = logits.dim(D::Minus1)?;
    let logits = logits.reshape(((), vocab))?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let picked = logp.gather(&batch.targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    let nll = (picked.neg()? * &batch.weights)?.sum_all()?;
    Ok((nll, batch.n_tokens))
}

/// Mean completion-token NLL of `seqs`, evaluated `batch_size` at a time.
pub fn mean_nll(
    model: &Llama,
    seqs: &[Sequence],
    batch_size: usize,
    pad: u32,
    device: &Device,
) -> candle_core::Result<f64> {
    let mut total = 0f64;
    let mut count = 0usize;
    for chunk in seqs.chunks(batch_size.max(1)) {
        let refs: Vec<&Sequence> = chunk.iter().collect();
        let batch = Batch::new(&refs, pad, device)?;
        let (sum, n) = batch_nll_sum(model, &batch)?;
        total += sum.detach().to_scalar::<f32>()? as f64;
        count += n;
    }
    Ok(total / count.max(1) as f64)
}

/// The `token_likelihood` reward of a mean NLL.
pub fn reward_from_nll(nll: f64) -> f64 {
    (-nll).exp()
}
