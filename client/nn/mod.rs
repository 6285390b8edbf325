//! The numerics: custom CPU kernels, the frozen quantized layer, LoRA, the head loss and the
//! model architectures, with the thread pools and allocator settings they run under. Knows no
//! objective and no reward.

pub mod allocator;
pub mod dequantize;
pub mod device;
mod fast_exp;
pub mod frozen;
pub mod head_loss;
pub mod lora;
mod lora_op;
pub mod model;
mod q8_pack;
pub mod q8_product;
mod q8_tiles;
mod serial_gemm;
mod storage;
pub mod threads;
