//! The client's shared memory segment: the file `boinc_mmap_file` in the slot, mapped shared,
//! holding eight [`Channel`]s in the order of BOINC's `SHARED_MEM`.

use super::channel::{Channel, CHANNEL_SIZE};
use memmap2::{MmapMut, MmapOptions};
use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// The segment's file in the slot directory (BOINC's `MMAPPED_FILE_NAME`).
pub const MMAP_FILE: &str = "boinc_mmap_file";

/// The channels, in their order in the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Client to app: suspend, resume, quit, abort.
    ProcessControlRequest = 0,
    /// App to client: replies to process control (unused by the client).
    ProcessControlReply = 1,
    /// Client to app: graphics requests.
    GraphicsRequest = 2,
    /// App to client: graphics replies.
    GraphicsReply = 3,
    /// Client to app: heartbeats and the app's memory limits.
    Heartbeat = 4,
    /// App to client: CPU time, checkpoint CPU time, fraction done.
    AppStatus = 5,
    /// App to client: trickle-up messages.
    TrickleUp = 6,
    /// Client to app: trickle-down messages.
    TrickleDown = 7,
}

/// Bytes in the segment.
pub const SEGMENT_SIZE: usize = 8 * CHANNEL_SIZE;

/// The mapped segment.
pub struct SharedMemory {
    map: MmapMut,
}

impl SharedMemory {
    /// Maps `path` (created by the client, at least [`SEGMENT_SIZE`] bytes) read-write, shared.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len < SEGMENT_SIZE as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {len} bytes, less than the {SEGMENT_SIZE} of the client's segment",
                    path.display()
                ),
            ));
        }
        // SAFETY: the file is the client's shared segment; both sides only ever touch it through
        // volatile byte accesses (`Channel`), so a concurrent writer cannot break Rust's
        // invariants for data we hold references to (we hold none).
        let map = unsafe { MmapOptions::new().len(SEGMENT_SIZE).map_mut(&file)? };
        Ok(Self { map })
    }

    /// The channel in `slot`, valid while `self` lives.
    pub fn channel(&mut self, slot: Slot) -> Channel {
        let offset = slot as usize * CHANNEL_SIZE;
        // SAFETY: `offset + CHANNEL_SIZE <= SEGMENT_SIZE`, the mapping's length; the caller keeps
        // `self` (and so the mapping) alive while it uses the channel.
        unsafe { Channel::new(self.map.as_mut_ptr().add(offset)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_sit_at_their_offsets_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MMAP_FILE);
        std::fs::write(&path, vec![0u8; SEGMENT_SIZE]).unwrap();
        let mut shm = SharedMemory::open(&path).unwrap();
        shm.channel(Slot::AppStatus)
            .overwrite("<fraction_done>0.5</fraction_done>");
        shm.map.flush().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let at = Slot::AppStatus as usize * CHANNEL_SIZE;
        assert_eq!(bytes[at], 1);
        assert!(bytes[at + 1..].starts_with(b"<fraction_done>0.5</fraction_done>\0"));
        assert!(bytes[..at].iter().all(|b| *b == 0));
    }

    #[test]
    fn a_short_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MMAP_FILE);
        std::fs::write(&path, [0u8; 100]).unwrap();
        let err = SharedMemory::open(&path).err().unwrap().to_string();
        assert!(
            err.contains(MMAP_FILE) && err.contains("100 bytes"),
            "{err}"
        );
    }
}
