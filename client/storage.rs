//! Reading the input of a custom CPU op: candle hands `cpu_fwd` a storage and a layout.

use candle_core::{CpuStorage, Layout};

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
