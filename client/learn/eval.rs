//! Loss and reward, shared by the app (its own eval split) and the validator (held-out data).
//!
//! The loss is the mean negative log-likelihood of the completion tokens. The reward of the
//! `token_likelihood` kind is `exp(-loss)`: the geometric mean probability the model gives the
//! reference completion, in (0, 1], higher is better.

use crate::learn::micro_batch::parts;
use crate::nn::model::Decoder;
use crate::text::data::{Batch, Sequence};
use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;

/// The reward kind of a decoder's work unit.
pub const REWARD_KIND: &str = crate::format::config::reward_kind::TOKEN_LIKELIHOOD;

/// Mean NLL over the batch's counted positions, as a scalar tensor that backpropagates.
pub fn batch_loss(model: &dyn Decoder, batch: &Batch) -> candle_core::Result<Tensor> {
    let (sum, _) = batch_nll_sum(model, batch, true)?;
    sum / batch.n_tokens.max(1) as f64
}

/// Sum of NLL over the counted positions, and their count. The output head (the widest matrix
/// of a real model) runs on those positions only, not on the prompt or the padding. Without
/// `gradient`, the head's input is detached, so the head builds no gradient.
fn batch_nll_sum(
    model: &dyn Decoder,
    batch: &Batch,
    gradient: bool,
) -> candle_core::Result<(Tensor, usize)> {
    let hidden = model.hidden(&batch.inputs)?;
    if batch.n_tokens == 0 {
        return Ok(((hidden.sum_all()? * 0.0)?.to_dtype(DType::F32)?, 0));
    }
    let width = hidden.dim(D::Minus1)?;
    let counted = hidden
        .reshape(((), width))?
        .index_select(&batch.positions, 0)?;
    let counted = if gradient { counted } else { counted.detach() };
    let nll = model.nll_rows(&counted, &batch.targets)?;
    Ok((nll.sum_all()?, batch.n_tokens))
}

/// Mean completion-token NLL of `seqs`, evaluated `batch_size` at a time, each batch in
/// [`crate::learn::micro_batch::PARTS`] parts. A batch's parts run side by side on rayon's threads
/// (each graph's small ops on its own thread, as in [`crate::learn::micro_batch`]), one batch after
/// another, so memory stays that of one batch; the sums are added in order, so the result does
/// not depend on the thread count.
pub fn mean_nll(
    model: &dyn Decoder,
    seqs: &[Sequence],
    batch_size: usize,
    pad: u32,
    device: &Device,
) -> candle_core::Result<f64> {
    let mut total = 0f64;
    let mut count = 0usize;
    for batch in seqs.chunks(batch_size.max(1)) {
        let sums: Vec<candle_core::Result<(f32, usize)>> = parts(batch)
            .into_par_iter()
            .map(|part| {
                let refs: Vec<&Sequence> = part.iter().collect();
                let batch = Batch::new(&refs, pad, device)?;
                let (sum, n) = batch_nll_sum(model, &batch, false)?;
                Ok((sum.detach().to_scalar::<f32>()?, n))
            })
            .collect();
        for sum in sums {
            let (sum, n) = sum?;
            total += sum as f64;
            count += n;
        }
    }
    Ok(total / count.max(1) as f64)
}

/// The `token_likelihood` reward of a mean NLL.
pub fn reward_from_nll(nll: f64) -> f64 {
    (-nll).exp()
}
