//! zstd-compressed input whose size nobody vouches for: decompressed into memory that grows
//! with what the frames actually hold, up to a limit, never sized by the frame header's claim
//! (a few bytes can claim gigabytes) and never past the limit.

use std::io::Read;

/// Space set aside up front per compressed byte, when the frame header declares at least as
/// much: honest deltas and data shards fit in it, and more is added as it is written.
const RESERVE_RATIO: usize = 8;
/// The least set aside up front.
const MIN_RESERVE: usize = 64 << 10;

/// The decompressed bytes of the zstd frame(s) in `bytes`, at most `limit` of them; the
/// message names the problem (not zstd, corrupt, or larger than `limit`). The buffer doubles
/// as it fills, but never past `limit + 1` bytes.
pub fn decompress(bytes: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(bytes)
        .map_err(|e| format!("not a zstd frame: {e}"))?;
    let mut out = vec![0u8; reserve(bytes, limit)];
    let mut filled = 0;
    loop {
        if filled == out.len() {
            if filled > limit {
                return Err(format!(
                    "decompresses to more than {} MiB, the most this file may hold",
                    limit >> 20
                ));
            }
            let more = filled.max(1).min(limit + 1 - filled);
            // Exactly: `resize` alone would double the allocation past the limit.
            out.reserve_exact(more);
            out.resize(filled + more, 0);
        }
        match decoder.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("not a zstd frame: {e}")),
        }
    }
    out.truncate(filled);
    Ok(out)
}

/// What to set aside for decompressing `bytes`: the size its first frame header declares, but
/// at most [`RESERVE_RATIO`] times the input and `limit + 1`, and at least [`MIN_RESERVE`]
/// (within `limit + 1`).
fn reserve(bytes: &[u8], limit: usize) -> usize {
    let declared = zstd::zstd_safe::get_frame_content_size(bytes)
        .ok()
        .flatten()
        .unwrap_or(0);
    usize::try_from(declared)
        .unwrap_or(usize::MAX)
        .min(bytes.len().saturating_mul(RESERVE_RATIO))
        .max(MIN_RESERVE)
        .min(limit.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_more_than_the_limit_and_non_frames() {
        let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let frame = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(decompress(&frame, 4 << 20).unwrap(), data);
        assert_eq!(decompress(&frame, data.len()).unwrap(), data);
        let err = decompress(&frame, 2 << 20).unwrap_err();
        assert!(err.contains("more than 2 MiB"), "{err}");
        let err = decompress(b"not zstd", 1 << 20).unwrap_err();
        assert!(err.starts_with("not a zstd frame"), "{err}");
        let err = decompress(&frame[..frame.len() / 2], 4 << 20).unwrap_err();
        assert!(err.starts_with("not a zstd frame"), "{err}");
    }

    #[test]
    fn the_reservation_follows_the_input_not_the_header() {
        // 64 MiB of zeros: a frame of a few kilobytes whose header declares 64 MiB.
        let frame = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
        assert!(frame.len() * RESERVE_RATIO < MIN_RESERVE, "{}", frame.len());
        assert_eq!(reserve(&frame, 1 << 30), MIN_RESERVE);
        // An honest frame's declared size is set aside whole, within the limit.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..1_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let frame = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(reserve(&frame, 1 << 30), data.len());
        assert_eq!(reserve(&frame, 1000), 1001);
    }
}
