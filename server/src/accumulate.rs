//! The hot path of aggregation: the weighted mean of a cohort of delta files, each read once.
//!
//! Decoder threads read and decompress the files into recycled buffers; the calling thread
//! takes them back in cohort order and adds `weight · scale · value / Σ weight` into one f32
//! accumulator per tensor, putting each value together from the data section's four byte
//! planes as it goes (`docs/formats.md#delta`: no unshuffled copy is made), so the result does
//! not depend on the thread count and memory is the accumulator plus a few buffers, whatever
//! the number of deltas. Each delta's L2 norm is
//! recomputed on the way and must equal the one the validator recorded: a queued file that
//! changed since validation stops the round. It does not re-validate anything else.

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, Metadata, SafeTensors};
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

/// How a cohort's files are read: decoder threads, as many as fit a memory budget.
#[derive(Clone, Copy, Debug)]
pub struct Decoding {
    /// Decoder threads asked for.
    pub threads: usize,
    /// Bytes the decoders' buffers and mapped files may take together. Each decoder holds two
    /// decompressed deltas (the one it decompresses, the one being summed) and the file it
    /// reads, so with Gemma-sized deltas (7.6 MB, 6.5 MB compressed) the default fits two.
    pub memory: u64,
}

impl Decoding {
    /// The default budget.
    pub const DEFAULT_MEMORY: u64 = 64 << 20;

    /// `threads` decoders within the default budget.
    pub fn threads(threads: usize) -> Self {
        Self {
            threads,
            memory: Self::DEFAULT_MEMORY,
        }
    }

    /// Decoders to run for `members`: the threads asked for, fewer when the budget holds fewer
    /// (sized from the first member's file; at least one).
    fn lanes(&self, members: &[Member]) -> usize {
        let wanted = self.threads.clamp(1, members.len().max(1));
        let Some(first) = members.first() else {
            return wanted;
        };
        let Some(per_lane) = lane_bytes(&first.path) else {
            // Unreadable: the decoder that reads it reports why.
            return wanted;
        };
        let fit = (self.memory / per_lane.max(1)).max(1) as usize;
        if fit < wanted {
            tracing::info!(
                "{fit} decoder thread(s) of the {wanted} asked for: each holds {:.1} MiB, \
                 the budget is {:.0} MiB",
                per_lane as f64 / (1u64 << 20) as f64,
                self.memory as f64 / (1u64 << 20) as f64
            );
        }
        fit.min(wanted)
    }
}

/// What one decoder holds for the delta file at `path`: two decompressed copies and the file.
fn lane_bytes(path: &std::path::Path) -> Option<u64> {
    let mut head = [0u8; 18];
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let n = std::io::Read::read(&mut file, &mut head).ok()?;
    let size = zstd::zstd_safe::get_frame_content_size(&head[..n]).ok()??;
    Some(2 * size.min(MAX_DECOMPRESSED) + len)
}

/// Per tensor: its shape and its mean values.
pub type Mean = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// A decompressed delta, or why it could not be read.
type Decoded = Result<Vec<u8>>;

/// `Σ weightᵢ·scaleᵢ·deltaᵢ / Σ weightᵢ`, reading the members' files as `decoding` says;
/// `done(i, bytes)` is called after member `i` (its file `bytes` long) is added.
pub fn weighted_mean(
    members: &[Member],
    decoding: Decoding,
    done: &mut dyn FnMut(usize, u64),
) -> Result<Mean> {
    let threads = decoding.lanes(members);
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
/// kernel neither copies it nor faults page by page) and decompressed in one call into the
/// buffer, its data section left as byte planes. Measured faster here than reading the file
/// into a buffer or streaming it, which copy it once more.
struct FileDecoder {
    context: zstd::zstd_safe::DCtx<'static>,
}

impl FileDecoder {
    fn new() -> Self {
        Self {
            context: zstd::zstd_safe::DCtx::create(),
        }
    }

    /// Decompresses the one-frame delta file at `path` into `out`; returns the file's length.
    fn decompress(&mut self, path: &PathBuf, out: &mut Vec<u8>) -> Result<u64> {
        let file = std::fs::File::open(path)?;
        // SAFETY: queue files are written once (temp file, rename) and never modified in
        // place; a file replaced meanwhile keeps this mapping on the old inode.
        let compressed = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
        let size = match zstd::zstd_safe::get_frame_content_size(&compressed) {
            Ok(Some(n)) if n <= MAX_DECOMPRESSED => n as usize,
            Ok(Some(n)) => bail!("claims {n} decompressed bytes, more than {MAX_DECOMPRESSED}"),
            _ => bail!("not a zstd frame with its content size"),
        };
        out.clear();
        out.reserve_exact(size);
        let n = self
            .context
            .decompress(out, &compressed)
            .map_err(zstd_error)?;
        if n != size {
            bail!("zstd frame holds {n} bytes, its header declares {size}");
        }
        Ok(compressed.len() as u64)
    }
}

fn zstd_error(code: usize) -> anyhow::Error {
    anyhow::anyhow!("zstd: {}", zstd::zstd_safe::get_error_name(code))
}

/// Accumulator elements per tile (128 KiB of f32): small enough to stay in cache.
const TILE: usize = 32 << 10;

/// A decompressed delta read in place: its tensors' places, and its data section's four byte
/// planes (a value's byte k is in plane k, `docs/formats.md#delta`).
struct Planes<'a> {
    metadata: Metadata,
    planes: [&'a [u8]; 4],
}

impl<'a> Planes<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self> {
        let (_, metadata) = SafeTensors::read_metadata(bytes).context("not a safetensors file")?;
        let (_, planes) = aginet::format::delta::byte_planes(bytes).map_err(anyhow::Error::msg)?;
        Ok(Self { metadata, planes })
    }

    /// The planes' slices holding tensor `name`'s values, which must be F32 of `shape`.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<[&'a [u8]; 4]> {
        let info = self
            .metadata
            .info(name)
            .with_context(|| format!("lacks tensor {name}"))?;
        if info.dtype != Dtype::F32 || info.shape != shape {
            bail!(
                "tensor {name} is {:?} {:?}, the cohort F32 {shape:?}",
                info.dtype,
                info.shape
            );
        }
        let (start, end) = info.data_offsets;
        if start % 4 != 0 {
            bail!("tensor {name} starts inside a value (byte {start})");
        }
        let values = start / 4..end / 4;
        Ok(self.planes.map(|p| &p[values.clone()]))
    }
}

/// Adds `weight · scale ×` the tensors of each decompressed delta in `decoded` to `sums`, tile
/// by tile, each element receiving the members' terms in cohort order; checks every norm.
fn add_batch(
    sums: &mut Mean,
    members: &[Member],
    decoded: &[Vec<u8>],
    total_weight: f64,
) -> Result<()> {
    let mut parsed = Vec::with_capacity(decoded.len());
    for (member, bytes) in members.iter().zip(decoded) {
        parsed.push(Planes::parse(bytes).with_context(|| format!("{}", member.path.display()))?);
    }
    if sums.is_empty() {
        for name in parsed[0].metadata.offset_keys() {
            let info = parsed[0].metadata.info(&name).expect("a listed tensor");
            let n = info.shape.iter().product();
            sums.insert(name, (info.shape.clone(), vec![0.0; n]));
        }
    }
    let mut sum_sq = vec![0f64; members.len()];
    let mut data = Vec::with_capacity(members.len());
    for (name, (shape, acc)) in sums.iter_mut() {
        data.clear();
        for (member, planes) in members.iter().zip(&parsed) {
            let values = planes
                .tensor(name, shape)
                .with_context(|| format!("{}", member.path.display()))?;
            data.push(values);
        }
        for start in (0..acc.len()).step_by(TILE) {
            let end = (start + TILE).min(acc.len());
            for (k, member) in members.iter().enumerate() {
                sum_sq[k] += accumulate(
                    &mut acc[start..end],
                    data[k].map(|p| &p[start..end]),
                    (member.weight * member.scale / total_weight) as f32,
                );
            }
        }
    }
    for ((member, planes), ss) in members.iter().zip(&parsed).zip(sum_sq) {
        let count = planes.metadata.offset_keys().len();
        if count != sums.len() {
            bail!(
                "{}: holds {count} tensors, the cohort {}",
                member.path.display(),
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

/// `acc += c · values` over values given as four byte planes (little-endian: byte k of each
/// value in `planes[k]`); returns `Σ value²`.
///
/// The hot loop of aggregation, in f32: it is bound by memory and by the two cores that also
/// decompress, and f32 halves both its traffic and its instructions against f64 (the sum of a
/// thousand deltas keeps about six significant digits). Putting each value together here
/// reads the planes once, where unshuffling first would write and read every value once more.
/// Every element gets the same multiply and add (no fused multiply-add) whichever path runs,
/// so the sums are identical with or without AVX2.
fn accumulate(acc: &mut [f32], planes: [&[u8]; 4], c: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { accumulate_avx2(acc, planes, c) };
    }
    accumulate_planes(acc, planes, c)
}

/// [`accumulate_planes`] compiled for AVX2 (eight f32 lanes instead of SSE2's four).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn accumulate_avx2(acc: &mut [f32], planes: [&[u8]; 4], c: f32) -> f64 {
    accumulate_planes(acc, planes, c)
}

/// The value whose little-endian bytes are `b0..b3`.
#[inline(always)]
fn value(b0: u8, b1: u8, b2: u8, b3: u8) -> f32 {
    f32::from_bits(u32::from(b0) | u32::from(b1) << 8 | u32::from(b2) << 16 | u32::from(b3) << 24)
}

/// `acc += c · values`, in blocks of eight the compiler vectorises; returns `Σ value²`.
#[inline(always)]
fn accumulate_planes(acc: &mut [f32], planes: [&[u8]; 4], c: f32) -> f64 {
    const LANES: usize = 8;
    let n = planes.iter().fold(acc.len(), |n, p| n.min(p.len()));
    let acc = &mut acc[..n];
    let [p0, p1, p2, p3] = planes.map(|p| &p[..n]);
    let mut partial = [0f32; LANES];
    let mut blocks = acc.chunks_exact_mut(LANES);
    let mut b0 = p0.chunks_exact(LANES);
    let mut b1 = p1.chunks_exact(LANES);
    let mut b2 = p2.chunks_exact(LANES);
    let mut b3 = p3.chunks_exact(LANES);
    for ((((a, x0), x1), x2), x3) in (&mut blocks)
        .zip(&mut b0)
        .zip(&mut b1)
        .zip(&mut b2)
        .zip(&mut b3)
    {
        for k in 0..LANES {
            let v = value(x0[k], x1[k], x2[k], x3[k]);
            a[k] += c * v;
            partial[k] += v * v;
        }
    }
    let tails = (
        b0.remainder(),
        b1.remainder(),
        b2.remainder(),
        b3.remainder(),
    );
    for (k, a) in blocks.into_remainder().iter_mut().enumerate() {
        let v = value(tails.0[k], tails.1[k], tails.2[k], tails.3[k]);
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
            Tensor::from_vec(values.to_vec(), (2, values.len() / 2), &Device::Cpu).unwrap(),
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

    /// The decoders asked for run when the budget holds them; fewer (at least one) when not,
    /// each counted as two decompressed deltas and its file.
    #[test]
    fn decoders_fit_the_memory_budget() {
        let dir = tempfile::tempdir().unwrap();
        let values: Vec<f32> = (0..4096).map(|i| i as f32).collect();
        let members: Vec<Member> = (0..6)
            .map(|k| {
                let (path, norm) = delta_file(dir.path(), &format!("d{k}"), &values);
                Member {
                    path,
                    weight: 1.0,
                    scale: 1.0,
                    norm,
                }
            })
            .collect();
        let lane = lane_bytes(&members[0].path).unwrap();
        let file = members[0].path.metadata().unwrap().len();
        assert!(
            lane > 2 * 4 * 4096 + file && lane < 2 * 4 * 4096 + file + 4096,
            "{lane}"
        );
        let lanes = |threads, memory| Decoding { threads, memory }.lanes(&members);
        assert_eq!(lanes(4, 100 * lane), 4);
        assert_eq!(lanes(8, 100 * lane), 6, "no more decoders than deltas");
        assert_eq!(lanes(4, 2 * lane), 2);
        assert_eq!(lanes(4, 2 * lane - 1), 1);
        assert_eq!(lanes(4, 1), 1, "at least one");
        let mean = weighted_mean(
            &members,
            Decoding {
                threads: 4,
                memory: 2 * lane,
            },
            &mut |_, _| {},
        );
        let one = weighted_mean(&members, Decoding::threads(1), &mut |_, _| {}).unwrap();
        assert_eq!(
            mean.unwrap()["x"].1,
            one["x"].1,
            "the same sums with fewer decoders"
        );
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
            let mean = weighted_mean(&members, Decoding::threads(threads), &mut |i, _| {
                seen.push(i)
            })
            .unwrap();
            assert_eq!(mean["x"].0, [2, 2]);
            assert_eq!(mean["x"].1, want);
            assert_eq!(seen, [0, 1]);
        }
    }

    #[test]
    fn every_accumulate_path_gives_the_same_sums() {
        let values: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.37).sin()).collect();
        let planes: Vec<Vec<u8>> = (0..4)
            .map(|k| values.iter().map(|v| v.to_le_bytes()[k]).collect())
            .collect();
        let planes = [&planes[0][..], &planes[1], &planes[2], &planes[3]];
        let want: Vec<f32> = values.iter().map(|v| 0.5 + 0.3 * v).collect();
        let want_ss: f64 = values.iter().map(|v| (*v as f64).powi(2)).sum();
        let mut dispatched = vec![0.5; values.len()];
        let ss = accumulate(&mut dispatched, planes, 0.3);
        let mut portable = vec![0.5; values.len()];
        let ss2 = accumulate_planes(&mut portable, planes, 0.3);
        assert_eq!(dispatched, want);
        assert_eq!(portable, want);
        for s in [ss, ss2] {
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
        let err = weighted_mean(&[m], Decoding::threads(2), &mut |_, _| {}).unwrap_err();
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
        let err = weighted_mean(&[m], Decoding::threads(1), &mut |_, _| {}).unwrap_err();
        assert!(format!("{err:#}").contains("zstd"), "{err:#}");
    }
}
