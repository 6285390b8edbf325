//! Where training runs: the CPU, or a CUDA or Metal GPU in builds with the `cuda` or `metal`
//! feature (the app versions of the `cuda` and `metal` plan classes), and which ops run there.
//!
//! Files (adapter, checkpoint, delta) always hold host tensors; the run moves what it trains to
//! the device and back.
//!
//! On the CPU the hot ops are fused custom ops with their own backward passes (the LoRA layer,
//! attention, RMSNorm, the rotary embedding, the gated GELU, the head's loss) and the frozen
//! weights stay quantized. On a GPU the same model is written with candle's ops, which candle
//! runs with its CUDA or Metal kernels and cuBLAS, and the frozen weights are dequantized once
//! into f32 on the device (a GPU has the memory, and a dense product is what its BLAS is fast
//! at). [`generic_ops`] says which of the two a device gets; `AGINET_GENERIC_OPS=1` gives the
//! CPU the GPU's graph, so that graph is tested on machines without a GPU.

use crate::error::{Error, Result};
use candle_core::Device;
use std::cell::Cell;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

#[cfg(all(feature = "cuda", feature = "metal"))]
compile_error!("features `cuda` and `metal` are exclusive: build one app version per plan class");

/// The environment variable that makes the CPU run the GPU's graph ([`generic_ops`]).
pub const GENERIC_OPS_ENV: &str = "AGINET_GENERIC_OPS";

/// Where a run is asked to compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceRequest {
    /// The CPU.
    #[default]
    Cpu,
    /// The GPU with this ordinal (CUDA in a `cuda` build, Metal in a `metal` build).
    Gpu(usize),
}

impl DeviceRequest {
    /// The GPU this build would use first, if it was built with one: `cuda:0` or `metal:0`;
    /// else the CPU.
    pub fn preferred() -> Self {
        if cfg!(any(feature = "cuda", feature = "metal")) {
            Self::Gpu(0)
        } else {
            Self::Cpu
        }
    }

    /// Opens the device; an error says why a GPU cannot be used (no GPU feature in this
    /// build, no such device, no driver).
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Gpu(ordinal) => open_gpu(ordinal),
        }
    }
}

#[cfg(feature = "cuda")]
fn open_gpu(ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|e| Error::Device(format!("CUDA device {ordinal}: {e}")))
}

#[cfg(feature = "metal")]
fn open_gpu(ordinal: usize) -> Result<Device> {
    Device::new_metal(ordinal).map_err(|e| Error::Device(format!("Metal device {ordinal}: {e}")))
}

#[cfg(not(any(feature = "cuda", feature = "metal")))]
fn open_gpu(ordinal: usize) -> Result<Device> {
    Err(Error::Device(format!(
        "GPU {ordinal} was asked for, but this build has no GPU support (built without the \
         `cuda` or `metal` feature)"
    )))
}

impl FromStr for DeviceRequest {
    type Err = String;

    /// `cpu`, `gpu`, `gpu:N`, `cuda`, `cuda:N`, `metal` or `metal:N` (the last four name the
    /// backend this build has; they are accepted in any build and fail at [`Self::open`]).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let (kind, ordinal) = match s.split_once(':') {
            Some((kind, n)) => (kind, Some(n)),
            None => (s, None),
        };
        let ordinal = match ordinal {
            None => 0,
            Some(n) => n
                .parse()
                .map_err(|_| format!("`{n}` is not a device number in `{s}`"))?,
        };
        match kind {
            "cpu" if s == "cpu" => Ok(Self::Cpu),
            "gpu" | "cuda" | "metal" => Ok(Self::Gpu(ordinal)),
            _ => Err(format!(
                "unknown device `{s}`: expected cpu, cuda[:N], metal[:N] or gpu[:N]"
            )),
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Gpu(n) if cfg!(feature = "metal") => write!(f, "metal:{n}"),
            Self::Gpu(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Whether `device` runs the model written with candle's ops (a GPU, or the CPU when
/// `AGINET_GENERIC_OPS=1` or inside [`with_generic_ops`]) instead of the CPU's fused custom ops
/// and quantized weights.
pub fn generic_ops(device: &Device) -> bool {
    !device.is_cpu() || generic_ops_forced() || FORCED_HERE.with(Cell::get)
}

thread_local! {
    /// Set while [`with_generic_ops`] runs on this thread.
    static FORCED_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the CPU taking the GPU's graph on this thread: models built and run inside
/// it (forward and backward) are what a GPU would run, on the CPU. For tests that compare the
/// two graphs in one process.
pub fn with_generic_ops<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            FORCED_HERE.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(FORCED_HERE.with(|c| c.replace(true)));
    f()
}

/// Whether `AGINET_GENERIC_OPS` asks the CPU for the GPU's graph (read once per process).
fn generic_ops_forced() -> bool {
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| std::env::var(GENERIC_OPS_ENV).is_ok_and(|v| !v.is_empty() && v != "0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_print() {
        assert_eq!("cpu".parse(), Ok(DeviceRequest::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceRequest::Gpu(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceRequest::Gpu(3)));
        assert_eq!("metal:1".parse(), Ok(DeviceRequest::Gpu(1)));
        assert_eq!("gpu:2".parse(), Ok(DeviceRequest::Gpu(2)));
        assert!("cpu:1".parse::<DeviceRequest>().is_err());
        assert!("cuda:x"
            .parse::<DeviceRequest>()
            .unwrap_err()
            .contains("`x`"));
        assert!("tpu"
            .parse::<DeviceRequest>()
            .unwrap_err()
            .contains("unknown device"));
        assert_eq!(DeviceRequest::Cpu.to_string(), "cpu");
        let gpu = DeviceRequest::Gpu(1).to_string();
        assert!(gpu == "cuda:1" || gpu == "metal:1");
    }

    #[test]
    fn generic_ops_are_the_gpu_s_and_can_be_asked_for_on_the_cpu() {
        let cpu = Device::Cpu;
        let here = generic_ops(&cpu);
        assert!(with_generic_ops(|| generic_ops(&cpu)));
        assert!(with_generic_ops(|| with_generic_ops(|| generic_ops(&cpu))));
        assert_eq!(generic_ops(&cpu), here, "the setting ends with the closure");
    }

    #[test]
    fn the_cpu_opens_and_a_missing_gpu_says_why() {
        assert!(DeviceRequest::Cpu.open().unwrap().is_cpu());
        // Device 999 exists nowhere: a GPU build cannot open it, a CPU build has no GPU.
        let err = DeviceRequest::Gpu(999).open().unwrap_err().to_string();
        assert!(err.contains("999"), "{err}");
    }
}
