//! What candle's GGUF reader leaves unchecked, checked before it runs: `general.alignment`,
//! which candle divides the data offset by (zero panics), must be a power of two, as llama.cpp
//! requires. The header is walked as the GGUF specification lays it out (version 1: 32-bit
//! lengths; versions 2 and 3: 64-bit), every length checked against the bytes left, so a
//! hostile header costs no more than its size.

use std::io::{Read, Seek, SeekFrom};

/// GGUF value types (the specification's numbering).
const STRING: u32 = 8;
const ARRAY: u32 = 9;
/// Arrays nested deeper than this are refused (the specification has no nesting at all).
const MAX_DEPTH: u32 = 8;
/// The key whose value candle divides by.
const ALIGNMENT_KEY: &str = "general.alignment";

/// A cursor over the header that knows how many bytes the file has left.
struct Walker<'a, R: Read + Seek + ?Sized> {
    reader: &'a mut R,
    /// Position in the file.
    at: u64,
    /// The file's length.
    len: u64,
    /// Bytes of a length field: 4 in version 1, else 8.
    length_bytes: u32,
}

impl<R: Read + Seek + ?Sized> Walker<'_, R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.reader
            .read_exact(&mut b)
            .map_err(|_| format!("the header ends early, at byte {}", self.at))?;
        self.at += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    /// A length field, checked to leave `unit`-byte items inside the file.
    fn length(&mut self, unit: u64) -> Result<u64, String> {
        let n = if self.length_bytes == 4 {
            u64::from(self.u32()?)
        } else {
            u64::from_le_bytes(self.bytes()?)
        };
        if n.saturating_mul(unit) > self.len.saturating_sub(self.at) {
            return Err(format!(
                "a length of {n} at byte {} runs past the end of the file ({} bytes)",
                self.at, self.len
            ));
        }
        Ok(n)
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        if n > self.len.saturating_sub(self.at) {
            return Err(format!(
                "the header runs past the end of the file at byte {}",
                self.at
            ));
        }
        self.at += n;
        self.reader
            .seek(SeekFrom::Start(self.at))
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        let n = self.length(1)?;
        let mut s = vec![0u8; n as usize];
        self.reader
            .read_exact(&mut s)
            .map_err(|_| format!("the header ends early, at byte {}", self.at))?;
        self.at += n;
        Ok(s)
    }

    /// Skips a value of type `kind`.
    fn skip_value(&mut self, kind: u32, depth: u32) -> Result<(), String> {
        match kind {
            STRING => {
                let n = self.length(1)?;
                self.skip(n)
            }
            ARRAY => {
                if depth >= MAX_DEPTH {
                    return Err(format!("arrays nested deeper than {MAX_DEPTH}"));
                }
                let element = self.u32()?;
                match scalar_size(element) {
                    Some(size) => {
                        let n = self.length(size)?;
                        self.skip(n * size)
                    }
                    None => {
                        let n = self.length(1)?;
                        (0..n).try_for_each(|_| self.skip_value(element, depth + 1))
                    }
                }
            }
            _ => {
                let size = scalar_size(kind).ok_or(format!("unknown value type {kind}"))?;
                self.skip(size)
            }
        }
    }

    /// An integer value of type `kind` (`None`: not an integer type, or negative: candle then
    /// takes its default alignment).
    fn integer(&mut self, kind: u32) -> Result<Option<u64>, String> {
        Ok(match kind {
            0 => Some(u64::from(self.bytes::<1>()?[0])),
            1 => u64::try_from(i8::from_le_bytes(self.bytes()?)).ok(),
            2 => Some(u64::from(u16::from_le_bytes(self.bytes()?))),
            3 => u64::try_from(i16::from_le_bytes(self.bytes()?)).ok(),
            4 => Some(u64::from(self.u32()?)),
            5 => u64::try_from(i32::from_le_bytes(self.bytes()?)).ok(),
            _ => {
                self.skip_value(kind, 0)?;
                None
            }
        })
    }
}

/// The size of a scalar of GGUF type `kind`; `None` for strings, arrays and unknown types.
fn scalar_size(kind: u32) -> Option<u64> {
    match kind {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// Checks the GGUF header in `reader` (at its start, `len` bytes in all): every
/// `general.alignment` it holds is a power of two. Leaves the reader anywhere.
pub fn check_alignment<R: Read + Seek + ?Sized>(reader: &mut R, len: u64) -> Result<(), String> {
    reader.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut w = Walker {
        reader,
        at: 0,
        len,
        length_bytes: 8,
    };
    let _magic = w.bytes::<4>()?;
    if w.u32()? == 1 {
        w.length_bytes = 4;
    }
    let _tensors = w.length(1)?;
    // A key-value pair takes at least a length, a type and one byte.
    let pairs = w.length(u64::from(w.length_bytes) + 5)?;
    for _ in 0..pairs {
        let mut key = w.string()?;
        // candle drops a key's trailing NULs (some writers add them), so this does too.
        while key.last() == Some(&0) {
            key.pop();
        }
        let kind = w.u32()?;
        if key == ALIGNMENT_KEY.as_bytes() {
            if let Some(a) = w.integer(kind)? {
                if !a.is_power_of_two() {
                    return Err(format!("{ALIGNMENT_KEY} is {a}, not a power of two"));
                }
            }
        } else {
            w.skip_value(kind, 0)?;
        }
    }
    Ok(())
}
