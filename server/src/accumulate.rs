//! The hot path of aggregation: the weighted mean of a cohort of delta files, each read once.
//!
//! Decoder threads read and decompress the files into recycled buffers; the calling thread
//! takes them back in cohort order and adds `weight · scale · value / Σ weight` into one f32
//! accumulator per tensor, so the result does not depend on the thread count and memory is the
//! accumulator plus a few buffers, whatever the number of deltas. Each delta's L2 norm is
//! recomputed on the way and must equal the one the validator recorded: a queued file that
//! changed since validation stops the round. It does not re-validate anything else.

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Largest decompressed delta accepted (a guard against zstd bombs).
const MAX_DECOMPRESSED: u64 = 1 << 30;
/// Relative difference allowed between a recomputed norm and the recorded one.
/// (The norms are summed in f32 within a tile, f64 across tiles.)
const NORM_TOLERANCE: f64 = 1e-4;

/// One delta of the cohort.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its file (zstd around safetensors).
    pub path: PathBuf,
    /// Its weight in the mean.
    pub weight: f64,
    /// The factor its values are scaled by (norm clipping), applied inside the sum.
    pub scale: f64,
    /// The L2 norm the validator recorded.
    pub norm: f64,
}

/// Per tensor: its shape and its mean values.
pub type Mean = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// A decompressed delta, or why it could not be read.
type Decoded = Result<Vec<u8>>;

/// `Σ weightᵢ·scaleᵢ·deltaᵢ / Σ weightᵢ`, reading the members' files with `threads` decoders;
/// `done(i, bytes)` is called after member `i` (its file `bytes` long) is added.
pub fn weighted_mean(
    members: &[Member],
    threads: usize,
    done: &mut dyn FnMut(usize, u64),
) -> Result<Mean> {
    let threads = threads.clamp(1, members.len().max(1));
    let total_weight: f64 = members.iter().map(|m| m.weight).sum();
    let mut sums: Mean = BTreeMap::new();
    std::thread::scope(|scope| -> Result<()> {
        let mut lanes = Vec::with_capacity(threads);
        for lane in 0..threads {
            let (full_tx, full_rx) = sync_channel::<(Decoded, u64)>(1);
            let (free_tx, free_rx) = sync_channel::<Vec<u8>>(2);
            free_tx.send(Vec::new()).expect("receiver alive");
            free_tx.send(Vec::new()).expect("receiver alive");
            let paths: Vec<&PathBuf> = members
                .iter()
                .skip(lane)
                .step_by(threads)
                .map(|m| &m.path)
                .collect();
            scope.spawn(move || decode_lane(&paths, &free_rx, &full_tx));
            lanes.push((full_rx, free_tx));
        }
        // Batches of one delta per decoder: each accumulator tile stays in cache while the
        // batch's deltas are added to it, in cohort order.
        for first in (0..members.len()).step_by(threads) {
            let batch = first..(first + threads).min(members.len());
            let mut raws = Vec::with_capacity(batch.len());
            let mut lens = Vec::with_capacity(batch.len());
            for i in batch.clone() {
                let (decoded, file_len) = lanes[i % threads]
                    .0
                    .recv()
                    .context("a decoder thread stopped")?;
                raws.push(decoded?);
                lens.push(file_len);
            }
            add_batch(&mut sums, &members[batch.clone()], &raws, total_weight)?;
            for (i, raw) in batch.zip(raws) {
                // The decoder may already have finished; then the buffer is simply dropped.
                let _ = lanes[i % threads].1.send(raw);
                done(i, lens[i % threads]);
            }
        }
        Ok(())
    })?;
    Ok(sums)
}

/// A decoder thread: reads and decompresses `paths` in order into buffers taken from `free`.
fn decode_lane(paths: &[&PathBuf], free: &Receiver<Vec<u8>>, full: &SyncSender<(Decoded, u64)>) {
    let mut decoder = FileDecoder::new();
    for path in paths {
        let Ok(mut raw) = free.recv() else { return };
        let message = match decoder
            .decompress(path, &mut raw)
            .with_context(|| format!("{}", path.display()))
        {
            Ok(len) => (Ok(raw), len),
            Err(e) => (Err(e), 0),
        };
        if full.send(message).is_err() {
            return;
        }
    }
}

/// Decompresses delta files into caller-owned buffers. The file is mapped (pre-faulted, so the
/// kernel neither copies it nor faults page by page) and decompressed in one call into a reused
/// buffer, whose byte planes are then put back into f32 values in the caller's buffer
/// (`docs/formats.md#delta`). Measured faster here than reading the file into a buffer or
/// streaming it, which copy it once more.
struct FileDecoder {
    context: zstd::zstd_safe::DCtx<'static>,
    planes: Vec<u8>,
}

impl FileDecoder {
    fn new() -> Self {
        Self {
            context: zstd::zstd_safe::DCtx::create(),
            planes: Vec::new(),
        }
    }

    /// Decompresses the one-frame delta file at `path` into `raw`, unshuffled; returns the
    /// file's length.
    fn decompress(&mut self, path: &PathBuf, raw: &mut Vec<u8>) -> Result<u64> {
        let file = std::fs::File::open(path)?;
        // SAFETY: queue files are written once (temp file, rename) and never modified in
        // place; a file replaced meanwhile keeps this mapping on the old inode.
        let compressed = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
        let size = match zstd::zstd_safe::get_frame_content_size(&compressed) {
            Ok(Some(n)) if n <= MAX_DECOMPRESSED => n as usize,
            Ok(Some(n)) => bail!("claims {n} decompressed bytes, more than {MAX_DECOMPRESSED}"),
            _ => bail!("not a zstd frame with its content size"),
        };
        self.planes.clear();
        self.planes.reserve_exact(size);
        let n = self
            .context
            .decompress(&mut self.planes, &compressed)
            .map_err(zstd_error)?;
        if n != size {
            bail!("zstd frame holds {n} bytes, its header declares {size}");
        }
        aginet::format::delta::unshuffle_into(&self.planes, raw).map_err(anyhow::Error::msg)?;
        Ok(compressed.len() as u64)
    }
}

fn zstd_error(code: usize) -> anyhow::Error {
    anyhow::anyhow!("zstd: {}", zstd::zstd_safe::get_error_name(code))
}

/// Accumulator elements per tile (128 KiB of f32): small enough to stay in cache.
const TILE: usize = 32 << 10;

/// Adds `weight · scale ×` the tensors of each decompressed delta in `raws` to `sums`, tile by
/// tile, each element receiving the members' terms in cohort order; checks every norm.
fn add_batch(
    sums: &mut Mean,
    members: &[Member],
    raws: &[Vec<u8>],
    total_weight: f64,
) -> Result<()> {
    let mut parsed = Vec::with_capacity(raws.len());
    for (member, raw) in members.iter().zip(raws) {
        let st = SafeTensors::deserialize(raw)
            .context("not a safetensors file")
            .with_context(|| format!("{}", member.path.display()))?;
        parsed.push(st);
    }
    if sums.is_empty() {
        for (name, view) in parsed[0].tensors() {
            let n = view.shape().iter().product();
            sums.insert(name, (view.shape().to_vec(), vec![0.0; n]));
        }
    }
    let mut sum_sq = vec![0f64; members.len()];
    let mut data = Vec::with_capacity(members.len());
    for (name, (shape, acc)) in sums.iter_mut() {
        data.clear();
        for (member, st) in members.iter().zip(&parsed) {
            let view = st
                .tensor(name)
                .with_context(|| format!("{}: lacks tensor {name}", member.path.display()))?;
            if view.dtype() != Dtype::F32 || view.shape() != shape.as_slice() {
                bail!(
                    "{}: tensor {name} is {:?} {:?}, the cohort F32 {shape:?}",
                    member.path.display(),
                    view.dtype(),
                    view.shape()
                );
            }
            data.push(view.data());
        }
        for start in (0..acc.len()).step_by(TILE) {
            let end = (start + TILE).min(acc.len());
            for (k, member) in members.iter().enumerate() {
                sum_sq[k] += accumulate(
                    &mut acc[start..end],
                    &data[k][start * 4..end * 4],
                    (member.weight * member.scale / total_weight) as f32,
                );
            }
        }
    }
    for ((member, st), ss) in members.iter().zip(&parsed).zip(sum_sq) {
        if st.len() != sums.len() {
            bail!(
                "{}: holds {} tensors, the cohort {}",
                member.path.display(),
                st.len(),
                sums.len()
            );
        }
        let norm = ss.sqrt();
        if (norm - member.norm).abs() > NORM_TOLERANCE * member.norm.max(1e-30) {
            bail!(
                "{}: L2 norm is {norm}, validation recorded {}: the file changed after validation",
                member.path.display(),
                member.norm
            );
        }
    }
    Ok(())
}

/// `acc += c · values` over little-endian f32 `bytes`; returns `Σ value²`.
///
/// The hot loop of aggregation, in f32: it is bound by memory and by the two cores that also
/// decompress, and f32 halves both its traffic and its instructions against f64 (the sum of a
/// thousand deltas keeps about six significant digits). Every element gets the same multiply
/// and add (no fused multiply-add) whichever path runs, so the sums are identical with or
/// without AVX2.
fn accumulate(acc: &mut [f32], bytes: &[u8], c: f32) -> f64 {
    match bytemuck::try_cast_slice::<u8, f32>(bytes) {
        Ok(values) if cfg!(target_endian = "little") => {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                return unsafe { accumulate_avx2(acc, values, c) };
            }
            accumulate_values(acc, values, c)
        }
        // Unaligned data (or a big-endian host): decode the values first.
        _ => {
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            accumulate_values(acc, &values, c)
        }
    }
}

/// [`accumulate_values`] compiled for AVX2 (eight f32 lanes instead of SSE2's four).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn accumulate_avx2(acc: &mut [f32], values: &[f32], c: f32) -> f64 {
    accumulate_values(acc, values, c)
}

/// `acc += c · values`, in blocks of eight the compiler vectorises; returns `Σ value²`.
#[inline(always)]
fn accumulate_values(acc: &mut [f32], values: &[f32], c: f32) -> f64 {
    const LANES: usize = 8;
    let n = acc.len().min(values.len());
    let (acc, values) = (&mut acc[..n], &values[..n]);
    let mut partial = [0f32; LANES];
    let mut blocks = acc.chunks_exact_mut(LANES);
    let mut value_blocks = values.chunks_exact(LANES);
    for (a, v) in (&mut blocks).zip(&mut value_blocks) {
        for k in 0..LANES {
            a[k] += c * v[k];
            partial[k] += v[k] * v[k];
        }
    }
    for (a, v) in blocks
        .into_remainder()
        .iter_mut()
        .zip(value_blocks.remainder())
    {
        *a += c * v;
        partial[0] += v * v;
    }
    partial.iter().map(|p| *p as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aginet::format::tensors::NamedTensors;
    use candle_core::{Device, Tensor};

    fn delta_file(dir: &std::path::Path, name: &str, values: &[f32]) -> (PathBuf, f64) {
        let mut t = NamedTensors::new();
        t.insert(
            "x".into(),
            Tensor::from_vec(values.to_vec(), (2, 2), &Device::Cpu).unwrap(),
        );
        let delta = aginet::format::delta::Delta {
            header: aginet::format::delta::DeltaHeader {
                format: aginet::format::delta::DELTA_FORMAT.into(),
                version: aginet::format::delta::DELTA_VERSION,
                skill: "test".into(),
                base_sha256: String::new(),
                adapter_version: 0,
                lora: aginet::format::adapter::LoraSpec::none(),
                steps: 1,
            },
            tensors: t,
        };
        let path = dir.join(name);
        std::fs::write(&path, delta.to_bytes().unwrap()).unwrap();
        let norm = values
            .iter()
            .map(|v| (*v as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        (path, norm)
    }

    #[test]
    fn weighted_mean_by_hand_for_any_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let (a, na) = delta_file(dir.path(), "a", &[1.0, 2.0, 3.0, 4.0]);
        let (b, nb) = delta_file(dir.path(), "b", &[-1.0, 0.0, 1.0, 8.0]);
        let members = [
            Member {
                path: a,
                weight: 3.0,
                scale: 1.0,
                norm: na,
            },
            Member {
                path: b,
                weight: 1.0,
                scale: 0.5,
                norm: nb,
            },
        ];
        // (3·[1,2,3,4] + 1·0.5·[-1,0,1,8]) / 4
        let want = [0.625, 1.5, 2.375, 4.0];
        for threads in 1..=3 {
            let mut seen = Vec::new();
            let mean = weighted_mean(&members, threads, &mut |i, _| seen.push(i)).unwrap();
            assert_eq!(mean["x"].0, [2, 2]);
            assert_eq!(mean["x"].1, want);
            assert_eq!(seen, [0, 1]);
        }
    }

    #[test]
    fn every_accumulate_path_gives_the_same_sums() {
        let values: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.37).sin()).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let want: Vec<f32> = values.iter().map(|v| 0.5 + 0.3 * v).collect();
        let want_ss: f64 = values.iter().map(|v| (*v as f64).powi(2)).sum();
        let mut aligned = vec![0.5; values.len()];
        let ss = accumulate(&mut aligned, &bytes, 0.3);
        let mut portable = vec![0.5; values.len()];
        let ss2 = accumulate_values(&mut portable, &values, 0.3);
        // One byte off: the unaligned path.
        let mut shifted = vec![0u8; 1];
        shifted.extend_from_slice(&bytes);
        let mut unaligned = vec![0.5; values.len()];
        let ss3 = accumulate(&mut unaligned, &shifted[1..], 0.3);
        assert_eq!(aligned, want);
        assert_eq!(portable, want);
        assert_eq!(unaligned, want);
        for s in [ss, ss2, ss3] {
            assert!((s - want_ss).abs() < 1e-6 * want_ss);
        }
    }

    #[test]
    fn a_file_changed_after_validation_stops_the_round() {
        let dir = tempfile::tempdir().unwrap();
        let (a, na) = delta_file(dir.path(), "a", &[1.0, 2.0, 3.0, 4.0]);
        let m = Member {
            path: a.clone(),
            weight: 1.0,
            scale: 1.0,
            norm: na * 1.01,
        };
        let err = weighted_mean(&[m], 2, &mut |_, _| {}).unwrap_err();
        assert!(
            format!("{err:#}").contains("changed after validation"),
            "{err:#}"
        );
        std::fs::write(&a, b"not zstd").unwrap();
        let m = Member {
            path: a,
            weight: 1.0,
            scale: 1.0,
            norm: na,
        };
        let err = weighted_mean(&[m], 1, &mut |_, _| {}).unwrap_err();
        assert!(format!("{err:#}").contains("zstd"), "{err:#}");
    }
}
