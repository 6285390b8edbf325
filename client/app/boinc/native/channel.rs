//! One message channel of the client's shared memory: a fixed 1,024-byte buffer whose first byte
//! says whether a message is waiting (non-zero) and whose remaining bytes hold it, NUL-terminated.
//!
//! The sender fills the text, then raises the flag; the receiver reads the text, then lowers it.
//! The other side of every channel is another process (the BOINC client), so every access is a
//! volatile byte access with fences ordering the text against the flag.

use std::sync::atomic::{fence, Ordering};

/// Bytes in one channel, flag included.
pub const CHANNEL_SIZE: usize = 1024;

/// Longest message a channel holds (the flag byte and the terminating NUL take two).
pub const MAX_MESSAGE: usize = CHANNEL_SIZE - 2;

/// A view of one channel inside a mapping that outlives it.
pub struct Channel {
    base: *mut u8,
}

// SAFETY: the channel points into a shared mapping owned by `SharedMemory`; all access is
// volatile and the owner serialises the app's own users behind a mutex.
unsafe impl Send for Channel {}

impl Channel {
    /// A channel over `CHANNEL_SIZE` bytes at `base`.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `CHANNEL_SIZE` bytes for as long as the
    /// channel is used.
    pub unsafe fn new(base: *mut u8) -> Self {
        Self { base }
    }

    fn read(&self, i: usize) -> u8 {
        debug_assert!(i < CHANNEL_SIZE);
        // SAFETY: `i` is within the channel, which `new`'s contract keeps valid.
        unsafe { self.base.add(i).read_volatile() }
    }

    fn write(&self, i: usize, byte: u8) {
        debug_assert!(i < CHANNEL_SIZE);
        // SAFETY: as in `read`.
        unsafe { self.base.add(i).write_volatile(byte) }
    }

    /// Whether a message is waiting.
    pub fn has_message(&self) -> bool {
        self.read(0) != 0
    }

    /// Takes the waiting message, if any, and frees the channel.
    pub fn receive(&self) -> Option<String> {
        if !self.has_message() {
            return None;
        }
        fence(Ordering::Acquire);
        let mut text = Vec::new();
        for i in 1..CHANNEL_SIZE {
            match self.read(i) {
                0 => break,
                b => text.push(b),
            }
        }
        fence(Ordering::Release);
        self.write(0, 0);
        Some(String::from_utf8_lossy(&text).into_owned())
    }

    /// Sends `message` if the channel is free; false if the last one has not been taken yet.
    pub fn send(&self, message: &str) -> bool {
        if self.has_message() {
            return false;
        }
        self.overwrite(message);
        true
    }

    /// Sends `message` whether or not the last one was taken (it replaces it). Text beyond
    /// [`MAX_MESSAGE`] bytes is cut.
    pub fn overwrite(&self, message: &str) {
        let bytes = &message.as_bytes()[..message.len().min(MAX_MESSAGE)];
        for (i, b) in bytes.iter().enumerate() {
            self.write(1 + i, *b);
        }
        self.write(1 + bytes.len(), 0);
        fence(Ordering::Release);
        self.write(0, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(buf: &mut [u8; CHANNEL_SIZE]) -> Channel {
        // SAFETY: the buffer outlives the channel in every test.
        unsafe { Channel::new(buf.as_mut_ptr()) }
    }

    #[test]
    fn a_sent_message_is_received_once() {
        let mut buf = [0u8; CHANNEL_SIZE];
        let ch = channel(&mut buf);
        assert!(ch.receive().is_none());
        assert!(ch.send("<quit/>"));
        assert!(ch.has_message());
        assert!(
            !ch.send("<suspend/>"),
            "a full channel refuses a second message"
        );
        assert_eq!(ch.receive().as_deref(), Some("<quit/>"));
        assert!(ch.receive().is_none());
        assert_eq!(buf[0], 0);
        assert_eq!(&buf[1..9], b"<quit/>\0");
    }

    #[test]
    fn overwrite_replaces_a_waiting_message_and_cuts_long_text() {
        let mut buf = [0u8; CHANNEL_SIZE];
        let ch = channel(&mut buf);
        ch.overwrite("first, longer message");
        ch.overwrite("second");
        assert_eq!(ch.receive().as_deref(), Some("second"));
        let long = "x".repeat(5000);
        ch.overwrite(&long);
        assert_eq!(ch.receive().map(|m| m.len()), Some(MAX_MESSAGE));
        assert_eq!(buf[CHANNEL_SIZE - 1], 0, "always NUL-terminated");
    }

    #[test]
    fn the_layout_is_the_c_library_s() {
        // Flag byte 0, text from byte 1, as BOINC's MSG_CHANNEL lays it out.
        let mut buf = [0u8; CHANNEL_SIZE];
        buf[1..13].copy_from_slice(b"<heartbeat/>");
        buf[0] = 1;
        let ch = channel(&mut buf);
        assert_eq!(ch.receive().as_deref(), Some("<heartbeat/>"));
    }
}
