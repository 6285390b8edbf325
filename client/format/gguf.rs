//! Reading a skill's GGUF base: header, metadata and quantized tensors, with errors that name the
//! file and what is wrong in it.
//!
//! The parsing itself is candle's `gguf_file`; this module adds what a volunteer's app needs on
//! top: the magic checked before anything else, the alignment candle divides by checked before
//! candle parses (`gguf_header`), every tensor's bytes checked to lie inside the
//! file before any is read, typed metadata getters, and shape checks against what the
//! architecture expects.

use crate::error::{Error, Result};
use candle_core::quantized::{gguf_file, QTensor};
use candle_core::Device;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The four bytes every GGUF file starts with.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// A seekable byte source: a file, or bytes in memory.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// An opened GGUF base: its parsed header and a reader for its tensors.
pub struct Gguf {
    path: PathBuf,
    content: gguf_file::Content,
    reader: Box<dyn ReadSeek>,
}

impl Gguf {
    /// Opens `path`, checks the magic, parses the header and checks that every tensor lies
    /// inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_reader(path, Box::new(BufReader::new(file)))
    }

    /// Parses a GGUF from `reader`; `path` names it in errors.
    pub fn from_reader(path: &Path, mut reader: Box<dyn ReadSeek>) -> Result<Self> {
        let mut magic = [0u8; 4];
        reader
            .read_exact(&mut magic)
            .map_err(|_| Error::model(path, "file is shorter than the 4-byte GGUF magic"))?;
        if &magic != GGUF_MAGIC {
            return Err(Error::model(
                path,
                format!("not a GGUF file: magic is {magic:02x?}, expected \"GGUF\""),
            ));
        }
        let file_len = reader
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io(path, e))?;
        crate::format::gguf_header::check_alignment(&mut *reader, file_len)
            .map_err(|m| Error::model(path, format!("malformed GGUF header: {m}")))?;
        reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(path, e))?;
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::model(path, format!("malformed GGUF header: {e}")))?;
        let gguf = Self {
            path: path.to_path_buf(),
            content,
            reader,
        };
        gguf.check_tensor_bounds(file_len)?;
        Ok(gguf)
    }

    /// Fails if any tensor's data would extend past the end of the file.
    fn check_tensor_bounds(&self, file_len: u64) -> Result<()> {
        let mut names: Vec<&String> = self.content.tensor_infos.keys().collect();
        names.sort();
        for name in names {
            let info = &self.content.tensor_infos[name];
            let elems = info
                .shape
                .dims()
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .ok_or_else(|| {
                    self.error(format!(
                        "tensor {name}: shape {:?} has too many elements",
                        info.shape.dims()
                    ))
                })?;
            let block = info.ggml_dtype.block_size();
            if elems % block != 0 {
                return Err(self.error(format!(
                    "tensor {name}: {elems} elements is not a multiple of the {:?} block size {block}",
                    info.ggml_dtype
                )));
            }
            let bytes = ((elems / block) as u64).saturating_mul(info.ggml_dtype.type_size() as u64);
            let start = self.content.tensor_data_offset.saturating_add(info.offset);
            let end = start.saturating_add(bytes);
            if end > file_len {
                return Err(self.error(format!(
                    "tensor {name}: data at bytes {start}..{end} lies past the end of the file \
                     ({file_len} bytes); the file is truncated or corrupt"
                )));
            }
        }
        Ok(())
    }

    /// The file this base was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A model error about this file.
    pub fn error(&self, msg: impl Into<String>) -> Error {
        Error::model(&self.path, msg)
    }

    fn value(&self, key: &str) -> Result<&gguf_file::Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.error(format!("metadata key {key} is missing")))
    }

    /// Whether the metadata has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.content.metadata.contains_key(key)
    }

    /// A metadata string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.value(key)?
            .to_string()
            .map(String::as_str)
            .map_err(|e| self.error(format!("metadata key {key}: {e}")))
    }

    /// A metadata unsigned integer (any width).
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        use gguf_file::Value as V;
        let v = match self.value(key)? {
            V::U8(v) => Some(*v as u64),
            V::U16(v) => Some(*v as u64),
            V::U32(v) => Some(*v as u64),
            V::U64(v) => Some(*v),
            V::I32(v) if *v >= 0 => Some(*v as u64),
            V::I64(v) if *v >= 0 => Some(*v as u64),
            _ => None,
        };
        v.map(|v| v as usize)
            .ok_or_else(|| self.error(format!("metadata key {key}: expected an unsigned integer")))
    }

    /// A metadata float.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.value(key)?
            .to_f32()
            .map_err(|e| self.error(format!("metadata key {key}: {e}")))
    }

    /// A metadata float, or `default` when the key is absent.
    pub fn get_f32_or(&self, key: &str, default: f32) -> Result<f32> {
        if self.content.metadata.contains_key(key) {
            self.get_f32(key)
        } else {
            Ok(default)
        }
    }

    /// A metadata boolean, or `default` when the key is absent.
    pub fn get_bool_or(&self, key: &str, default: bool) -> Result<bool> {
        if !self.content.metadata.contains_key(key) {
            return Ok(default);
        }
        self.value(key)?
            .to_bool()
            .map_err(|e| self.error(format!("metadata key {key}: {e}")))
    }

    /// A metadata array of floats.
    pub fn get_f32s(&self, key: &str) -> Result<Vec<f32>> {
        self.array(key)?
            .iter()
            .map(|v| {
                v.to_f32()
                    .map_err(|e| self.error(format!("metadata key {key}: {e}")))
            })
            .collect()
    }

    /// A metadata array of signed 32-bit integers.
    pub fn get_i32s(&self, key: &str) -> Result<Vec<i32>> {
        self.array(key)?
            .iter()
            .map(|v| {
                v.to_i32()
                    .map_err(|e| self.error(format!("metadata key {key}: {e}")))
            })
            .collect()
    }

    fn array(&self, key: &str) -> Result<&Vec<gguf_file::Value>> {
        self.value(key)?
            .to_vec()
            .map_err(|e| self.error(format!("metadata key {key}: {e}")))
    }

    /// A metadata array of strings.
    pub fn get_strings(&self, key: &str) -> Result<Vec<String>> {
        let values = self
            .value(key)?
            .to_vec()
            .map_err(|e| self.error(format!("metadata key {key}: {e}")))?;
        values
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| self.error(format!("metadata key {key}: {e}")))
            })
            .collect()
    }

    /// Total number of weights in the base (every tensor's element count).
    pub fn parameter_count(&self) -> u64 {
        self.content
            .tensor_infos
            .values()
            .map(|i| i.shape.elem_count() as u64)
            .sum()
    }

    /// How many tensors the base holds of each quantization type (candle's names, e.g. `Q8_0`,
    /// `Q4K`, `F32`).
    pub fn tensor_types(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for info in self.content.tensor_infos.values() {
            *counts.entry(format!("{:?}", info.ggml_dtype)).or_default() += 1;
        }
        counts
    }

    /// Whether the base holds a tensor called `name`.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Reads tensor `name` and checks its shape is `dims` (outermost first, as candle orders them).
    pub fn tensor(&mut self, name: &str, dims: &[usize], device: &Device) -> Result<QTensor> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| Error::model(&self.path, format!("tensor {name} is missing")))?;
        if info.shape.dims() != dims {
            return Err(self.error(format!(
                "tensor {name} has shape {:?}, the architecture expects {dims:?}",
                info.shape.dims()
            )));
        }
        info.read(&mut self.reader, self.content.tensor_data_offset, device)
            .map_err(|e| Error::model(&self.path, format!("tensor {name}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::Tensor;
    use std::io::Cursor;

    /// A GGUF holding one 2×32 f32 tensor named `w`.
    fn small_gguf() -> Vec<u8> {
        let t = QTensor::quantize(
            &Tensor::zeros((2, 32), candle_core::DType::F32, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap();
        let mut out = Cursor::new(Vec::new());
        gguf_file::write(&mut out, &[], &[("w", &t)]).unwrap();
        out.into_inner()
    }

    fn open_bytes(bytes: Vec<u8>) -> Result<Gguf> {
        Gguf::from_reader(Path::new("t.gguf"), Box::new(Cursor::new(bytes)))
    }

    #[test]
    fn reads_a_well_formed_file() {
        let mut g = open_bytes(small_gguf()).unwrap();
        assert!(g.has_tensor("w"));
        assert!(g.tensor("w", &[2, 32], &Device::Cpu).is_ok());
        let err = g
            .tensor("w", &[32, 2], &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.gguf") && err.contains("has shape [2, 32]"),
            "{err}"
        );
    }

    /// A zero (or any not a power of two) `general.alignment` is an error naming the key, not
    /// candle's division by zero; also under the key padded with NULs, which candle strips
    /// (found by the `gguf` fuzz target).
    #[test]
    fn an_alignment_that_is_no_power_of_two_is_an_error() {
        let cases = [
            ("general.alignment", 0u32, false),
            ("general.alignment", 24, false),
            ("general.alignment\0\0\0\0", 0, false),
            ("general.alignment", 1, true),
            ("general.alignment", 64, true),
        ];
        for (key, alignment, ok) in cases {
            let t = QTensor::quantize(
                &Tensor::zeros((2, 32), candle_core::DType::F32, &Device::Cpu).unwrap(),
                GgmlDType::F32,
            )
            .unwrap();
            let value = gguf_file::Value::U32(alignment);
            let mut out = Cursor::new(Vec::new());
            gguf_file::write(&mut out, &[(key, &value)], &[("w", &t)]).unwrap();
            let got = open_bytes(out.into_inner());
            if ok {
                // The writer pads to 32; the reader may place the data elsewhere: either
                // way, no panic.
                continue;
            }
            let err = got.err().expect("rejected").to_string();
            assert!(
                err.contains("t.gguf") && err.contains("general.alignment"),
                "{key:?} {alignment}: {err}"
            );
        }
    }

    /// Dimensions whose product overflows are an error, not a panic or a wrapped size (found
    /// by the `gguf` fuzz target).
    #[test]
    fn element_count_overflow_is_an_error() {
        let mut bytes = small_gguf();
        // Tensor info: name "w" (u64 length 1, then the byte), n_dims u32 = 2, dims u64 × 2.
        let at = bytes
            .windows(9)
            .position(|w| w == [1, 0, 0, 0, 0, 0, 0, 0, b'w'])
            .unwrap()
            + 9
            + 4;
        bytes[at..at + 8].copy_from_slice(&(u64::MAX / 3).to_le_bytes());
        bytes[at + 8..at + 16].copy_from_slice(&(u64::MAX / 5).to_le_bytes());
        let err = open_bytes(bytes).err().expect("rejected").to_string();
        assert!(
            err.contains("t.gguf") && err.contains("too many elements"),
            "{err}"
        );
    }
}
