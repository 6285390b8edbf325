//! zstd-compressed input whose size nobody vouches for: the frames are decompressed once
//! through a small buffer to count what they hold (stopping past a limit), then into memory of
//! exactly that size. Never sized by the frame header's claim (a few bytes can claim
//! gigabytes), never past the limit, and a bomb costs a pass through a buffer that stays in
//! the cache instead of hundreds of MB of memory grown, zeroed and copied.

use std::io::Read;

/// The buffer the counting pass decompresses through.
const SCRATCH: usize = 128 << 10;

/// The decompressed bytes of the zstd frame(s) in `bytes`, at most `limit` of them; the
/// message names the problem (not zstd, corrupt, or larger than `limit`).
pub fn decompress(bytes: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let size = decompressed_size(bytes, limit)?;
    let mut out = vec![0u8; size];
    decoder(bytes)?
        .read_exact(&mut out)
        .map_err(|e| format!("not a zstd frame: {e}"))?;
    Ok(out)
}

/// How many bytes the frame(s) in `bytes` decompress to, refused past `limit`.
fn decompressed_size(bytes: &[u8], limit: usize) -> Result<usize, String> {
    let mut decoder = decoder(bytes)?;
    let mut scratch = vec![0u8; SCRATCH];
    let mut total = 0usize;
    loop {
        match decoder.read(&mut scratch) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                total += n;
                if total > limit {
                    return Err(format!(
                        "decompresses to more than {} MiB, the most this file may hold",
                        limit >> 20
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("not a zstd frame: {e}")),
        }
    }
}

/// A streaming decoder over every frame in `bytes`.
fn decoder(bytes: &[u8]) -> Result<zstd::stream::read::Decoder<'_, &[u8]>, String> {
    zstd::stream::read::Decoder::with_buffer(bytes).map_err(|e| format!("not a zstd frame: {e}"))
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
    fn a_bomb_is_refused_and_concatenated_frames_are_read_whole() {
        // 64 MiB of zeros: a frame of a few kilobytes.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        let err = decompress(&bomb, 1 << 20).unwrap_err();
        assert!(err.contains("more than 1 MiB"), "{err}");
        let mut two = zstd::bulk::compress(b"first ", 3).unwrap();
        two.extend(zstd::bulk::compress(b"second", 3).unwrap());
        assert_eq!(decompress(&two, 12).unwrap(), b"first second");
        assert!(decompress(&two, 11).is_err());
    }
}
