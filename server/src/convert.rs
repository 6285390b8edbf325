//! `convert-base --in GGUF --out GGUF`: a base with every Q5_0 tensor rewritten as Q8_0, exactly.
//!
//! candle has fast CPU kernels for Q8_0 and the k-quants but none for Q5_0, which Gemma 3
//! 270M's Q4_K_M file uses for 81 tensors. A Q5_0 block holds 32 values `d·(q − 16)` with
//! `q` in 0..32 and an f16 scale `d`; as Q8_0 with scale `d/8` and values `8·(q − 16)` (in
//! −128..120, which an int8 holds) it dequantizes to the same numbers, as long as `d/8` is an
//! f16 exactly (it is unless `d` is tiny enough for `d/8` to lose bits as a subnormal). Blocks
//! where it is not are counted and reported. Every other tensor and all metadata are copied.
//! The usual Q8_0 scale, max|x|/127, would not be exact.

use aginet::nn::dequantize::Q8_0_BYTES;
use anyhow::{bail, Context, Result};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;
use half::f16;
use std::path::Path;

/// Bytes of a Q5_0 block: f16 scale, 32 high bits, 16 bytes of low nibbles.
const Q5_0_BLOCK: usize = 22;

/// What a conversion did.
#[derive(Debug, PartialEq)]
pub struct Converted {
    /// Tensors rewritten from Q5_0 to Q8_0.
    pub tensors: usize,
    /// Blocks whose scale/8 is not an exact f16 (their values move by at most one f16 ulp).
    pub inexact_blocks: usize,
}

/// One Q5_0 block as a Q8_0 block; `false` when its scale/8 is not exact in f16.
pub fn q5_0_to_q8_0(block: &[u8]) -> ([u8; Q8_0_BYTES], bool) {
    let d = f16::from_le_bytes([block[0], block[1]]);
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let qs = &block[6..Q5_0_BLOCK];
    let d8 = f16::from_f32(d.to_f32() / 8.0);
    let exact = d8.to_f32() * 8.0 == d.to_f32();
    let mut out = [0u8; Q8_0_BYTES];
    out[..2].copy_from_slice(&d8.to_le_bytes());
    for j in 0..16 {
        let low = (qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10) as u8;
        let high = (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10) as u8;
        out[2 + j] = (8 * (low as i8 - 16)) as u8;
        out[2 + j + 16] = (8 * (high as i8 - 16)) as u8;
    }
    (out, exact)
}

/// Converts the base at `input` and writes it to `output`.
pub fn convert(input: &Path, output: &Path) -> Result<Converted> {
    let mut file = std::fs::File::open(input).with_context(|| format!("{}", input.display()))?;
    let content = gguf_file::Content::read(&mut file)
        .with_context(|| format!("{}: malformed GGUF", input.display()))?;
    let mut infos: Vec<(&String, &gguf_file::TensorInfo)> = content.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, info)| info.offset);
    let mut done = Converted {
        tensors: 0,
        inexact_blocks: 0,
    };
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(infos.len());
    for (name, info) in infos {
        let tensor = info
            .read(&mut file, content.tensor_data_offset, &Device::Cpu)
            .with_context(|| format!("{}: tensor {name}", input.display()))?;
        let tensor = if tensor.dtype() == GgmlDType::Q5_0 {
            let raw = tensor.data()?;
            if raw.len() % Q5_0_BLOCK != 0 {
                bail!(
                    "{}: tensor {name} is not whole Q5_0 blocks",
                    input.display()
                );
            }
            let mut q8 = Vec::with_capacity(raw.len() / Q5_0_BLOCK * Q8_0_BYTES);
            for block in raw.chunks_exact(Q5_0_BLOCK) {
                let (converted, exact) = q5_0_to_q8_0(block);
                q8.extend_from_slice(&converted);
                done.inexact_blocks += usize::from(!exact);
            }
            done.tensors += 1;
            candle_core::quantized::ggml_file::qtensor_from_ggml(
                GgmlDType::Q8_0,
                &q8,
                tensor.shape().dims().to_vec(),
                &Device::Cpu,
            )?
        } else {
            tensor
        };
        tensors.push((name.clone(), tensor));
    }
    let mut metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.sort_by_key(|(k, _)| *k);
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let tmp = aginet::format::files::temp_path(output);
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("{}", tmp.display()))?,
    );
    gguf_file::write(&mut out, &metadata, &refs)
        .with_context(|| format!("writing {}", tmp.display()))?;
    let file = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    file.sync_all()?;
    std::fs::rename(&tmp, output).with_context(|| format!("{}", output.display()))?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of a Q5_0 block, decoded as ggml defines them.
    fn q5_0_values(block: &[u8]) -> Vec<f32> {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
        let mut v = vec![0f32; 32];
        for j in 0..16 {
            let x0 = ((block[6 + j] & 0x0F) as u32 | (((qh >> j) & 1) << 4)) as i32 - 16;
            let x1 = ((block[6 + j] >> 4) as u32 | (((qh >> (j + 16)) & 1) << 4)) as i32 - 16;
            v[j] = d * x0 as f32;
            v[j + 16] = d * x1 as f32;
        }
        v
    }

    #[test]
    fn a_block_converts_exactly() {
        let mut block = [0u8; Q5_0_BLOCK];
        block[..2].copy_from_slice(&f16::from_f32(0.0123).to_le_bytes());
        block[2..6].copy_from_slice(&0xA5C3_0F96u32.to_le_bytes());
        for (j, b) in block[6..].iter_mut().enumerate() {
            *b = (j as u8).wrapping_mul(37);
        }
        let (q8, exact) = q5_0_to_q8_0(&block);
        assert!(exact);
        let d8 = f16::from_le_bytes([q8[0], q8[1]]).to_f32();
        let got: Vec<f32> = q8[2..].iter().map(|q| d8 * (*q as i8) as f32).collect();
        assert_eq!(got, q5_0_values(&block));
    }
}
