//! The hot path of aggregation: the weighted mean of a cohort of delta files, each read once.
//!
//! Decoder threads read and decompress the files into recycled buffers; the calling thread
//! takes them back in cohort order and adds `weight · scale · value` into one f64 accumulator
//! per tensor, so the result does not depend on the thread count and memory is the
//! accumulator plus a few buffers, whatever the number of deltas. Each delta's L2 norm is
//! recomputed on the way and must equal the one the validator recorded: a queued file that
//! changed since validation stops the round. It does not re-validate anything else.

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Largest decompressed delta accepted (a guard against zstd bombs).
const MAX_DECOMPRESSED: u64 = 1 << 30;
/// Relative difference allowed between a recomputed norm and the recorded one.
const NORM_TOLERANCE: f64 = 1e-9;

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
    let mut sums: BTreeMap<String, (Vec<usize>, Vec<f64>)> = BTreeMap::new();
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
        for (i, member) in members.iter().enumerate() {
            let (full_rx, free_tx) = &lanes[i % threads];
            let (decoded, file_len) = full_rx.recv().context("a decoder thread stopped")?;
            let raw = decoded?;
            add(&mut sums, member, &raw, member.weight * member.scale)
                .with_context(|| format!("{}", member.path.display()))?;
            // The decoder may already have finished; then the buffer is simply dropped.
            let _ = free_tx.send(raw);
            done(i, file_len);
        }
        Ok(())
    })?;
    Ok(sums
        .into_iter()
        .map(|(name, (shape, acc))| {
            let mean = acc
                .iter()
                .map(|a| {
                    if total_weight > 0.0 {
                        (a / total_weight) as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            (name, (shape, mean))
        })
        .collect())
}

/// A decoder thread: reads and decompresses `paths` in order into buffers taken from `free`.
fn decode_lane(paths: &[&PathBuf], free: &Receiver<Vec<u8>>, full: &SyncSender<(Decoded, u64)>) {
    let mut compressed = Vec::new();
    for path in paths {
        let Ok(mut raw) = free.recv() else { return };
        let result = read_into(path, &mut compressed)
            .and_then(|()| decompress_into(&compressed, &mut raw))
            .with_context(|| format!("{}", path.display()))
            .map(|()| raw);
        if full.send((result, compressed.len() as u64)).is_err() {
            return;
        }
    }
}

fn read_into(path: &PathBuf, buf: &mut Vec<u8>) -> Result<()> {
    buf.clear();
    std::fs::File::open(path)?.read_to_end(buf)?;
    Ok(())
}

/// Decompresses one zstd frame into `raw`, reusing its allocation.
fn decompress_into(compressed: &[u8], raw: &mut Vec<u8>) -> Result<()> {
    let size = match zstd::zstd_safe::get_frame_content_size(compressed) {
        Ok(Some(n)) if n <= MAX_DECOMPRESSED => n as usize,
        Ok(Some(n)) => bail!("claims {n} decompressed bytes, more than {MAX_DECOMPRESSED}"),
        _ => bail!("not a zstd frame with its content size"),
    };
    raw.clear();
    raw.reserve(size);
    let n = zstd::bulk::Decompressor::new()?
        .decompress_to_buffer(compressed, raw)
        .context("zstd")?;
    if n != size {
        bail!("zstd frame holds {n} bytes, its header says {size}");
    }
    Ok(())
}

/// Adds `coefficient ×` the tensors of one decompressed delta to `sums`, checking its norm.
fn add(
    sums: &mut BTreeMap<String, (Vec<usize>, Vec<f64>)>,
    member: &Member,
    raw: &[u8],
    coefficient: f64,
) -> Result<()> {
    let st = SafeTensors::deserialize(raw).context("not a safetensors file")?;
    let first = sums.is_empty();
    if !first && st.len() != sums.len() {
        bail!("holds {} tensors, the cohort {}", st.len(), sums.len());
    }
    let mut sum_sq = 0f64;
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            bail!("tensor {name} is {:?}, not F32", view.dtype());
        }
        if first {
            let n = view.shape().iter().product();
            sums.insert(name.clone(), (view.shape().to_vec(), vec![0.0; n]));
        }
        let Some((shape, acc)) = sums.get_mut(&name) else {
            bail!("tensor {name} is not in the cohort's first delta");
        };
        if shape.as_slice() != view.shape() {
            bail!(
                "tensor {name} has shape {:?}, the cohort {shape:?}",
                view.shape()
            );
        }
        sum_sq += accumulate(acc, view.data(), coefficient);
    }
    let norm = sum_sq.sqrt();
    if (norm - member.norm).abs() > NORM_TOLERANCE * member.norm.max(1e-30) {
        bail!(
            "L2 norm is {norm}, validation recorded {}: the file changed after validation",
            member.norm
        );
    }
    Ok(())
}

/// `acc += c · values` over little-endian f32 `bytes`; returns `Σ value²`.
fn accumulate(acc: &mut [f64], bytes: &[u8], c: f64) -> f64 {
    let mut sum_sq = 0f64;
    for (a, b) in acc.iter_mut().zip(bytes.chunks_exact(4)) {
        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64;
        *a += c * v;
        sum_sq += v * v;
    }
    sum_sq
}

#[cfg(test)]
mod tests {
    use super::*;
    use aginet::tensors::{encode, NamedTensors};
    use candle_core::{Device, Tensor};

    fn delta_file(dir: &std::path::Path, name: &str, values: &[f32]) -> (PathBuf, f64) {
        let mut t = NamedTensors::new();
        t.insert(
            "x".into(),
            Tensor::from_vec(values.to_vec(), (2, 2), &Device::Cpu).unwrap(),
        );
        let raw = encode(&t, &serde_json::json!({})).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, zstd::bulk::compress(&raw, 3).unwrap()).unwrap();
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
