//! Where training runs: the CPU by default, the first CUDA or Metal GPU in builds with the
//! `cuda` or `metal` feature (the app versions of the `cuda` and `metal` plan classes).
//!
//! Files (adapter, checkpoint, delta) always hold host tensors; the run moves what it trains to
//! the device and back.

use crate::error::Result;
use candle_core::Device;

#[cfg(all(feature = "cuda", feature = "metal"))]
compile_error!("features `cuda` and `metal` are exclusive: build one app version per plan class");

/// The device this build computes on.
pub fn compute_device() -> Result<Device> {
    #[cfg(feature = "cuda")]
    return Ok(Device::new_cuda(0)?);
    #[cfg(feature = "metal")]
    return Ok(Device::new_metal(0)?);
    #[cfg(not(any(feature = "cuda", feature = "metal")))]
    Ok(Device::Cpu)
}
