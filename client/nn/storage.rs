//! Reading the inputs of a custom CPU op: candle hands `cpu_fwd` a storage and a layout, and
//! `bwd` tensors.

use candle_core::{CpuStorage, Layout, Tensor};

/// The values of a contiguous f32 CPU storage as its layout places them; an error naming `op`
/// otherwise.
pub(crate) fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((from, to))) => Ok(&v[from..to]),
        _ => candle_core::bail!("{op}: expects contiguous f32 input"),
    }
}

/// The values of `t` (an op's argument, result or incoming gradient in `bwd`) as one flat f32
/// vector in row-major order, outside the autograd graph.
pub(crate) fn flat_f32(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.detach().contiguous()?.flatten_all()?.to_vec1::<f32>()
}
