//! A vision work unit's `data`: the same prompt/completion JSON lines as every skill's (see
//! [`crate::text::data`]), whose prompt is the image as eight lines of intensity letters and whose
//! completion is the digit ([`crate::task::digits::pair`]), read as the classifier's examples.
//! Lines marked `eval` are the work unit's own before/after check; when none is, the last tenth
//! (at least one) is, as for the decoders' data.

use crate::error::{Error, Result};
use crate::task::digits::{self, Example};
use crate::text::data::{parse_examples, read_maybe_compressed, split, Split};
use std::path::Path;

/// A work unit's images, split.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ImageDataset {
    /// Training examples.
    pub train: Vec<Example>,
    /// Evaluation examples.
    pub eval: Vec<Example>,
}

impl ImageDataset {
    /// Reads and splits a data file (plain or zstd-compressed).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = read_maybe_compressed(path)?;
        Self::parse(&bytes).map_err(|m| Error::data(path, m))
    }

    /// Every example of a data file whatever its split (the server's held-out sets).
    pub fn read_all(path: &Path) -> Result<Vec<Example>> {
        let bytes = read_maybe_compressed(path)?;
        let lines = parse_lines(&bytes).map_err(|m| Error::data(path, m))?;
        Ok(lines.into_iter().map(|(example, _)| example).collect())
    }

    /// Parses JSONL bytes; the error is a message for the caller to attach a path to.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let (train, eval) = split(parse_lines(bytes)?)?;
        Ok(Self { train, eval })
    }
}

/// The images of JSONL bytes with their split markers.
fn parse_lines(bytes: &[u8]) -> std::result::Result<Vec<(Example, Option<Split>)>, String> {
    parse_examples(bytes)?
        .into_iter()
        .map(|(line, ex)| {
            let digit = digits::from_pair(&ex.prompt, &ex.completion)
                .map_err(|m| format!("line {line}: {m}"))?;
            Ok((digits::example(&digit), ex.split))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::digits::{pair, Digit};

    fn line(label: u8, split: &str) -> String {
        let mut pixels = [0u8; 64];
        for (i, p) in pixels.iter_mut().enumerate() {
            *p = ((i + label as usize) % 17) as u8;
        }
        let p = pair(&Digit { pixels, label });
        serde_json::json!({"prompt": p.prompt, "completion": p.completion, "split": split})
            .to_string()
            + "\n"
    }

    #[test]
    fn lines_become_scaled_pixels_and_labels_in_their_split() {
        let text = format!(
            "{}{}\n{}",
            line(3, "train"),
            line(7, "eval"),
            line(9, "train")
        );
        let d = ImageDataset::parse(text.as_bytes()).unwrap();
        assert_eq!((d.train.len(), d.eval.len()), (2, 1));
        assert_eq!(d.eval[0].label, 7);
        assert_eq!(d.train[0].input.len(), 64);
        assert_eq!(d.train[0].input[0], 3.0 / 16.0);
        assert_eq!(d.train[1].label, 9);
    }

    #[test]
    fn bad_lines_are_refused_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let bad = line(2, "train").replace("\"2\"", "\"two\"");
        std::fs::write(&path, format!("{}{bad}", line(1, "train"))).unwrap();
        let e = ImageDataset::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("data") && e.contains("line 2") && e.contains("not one digit"),
            "{e}"
        );
        std::fs::write(
            &path,
            "{\"prompt\": \"reverse: ab\\n\", \"completion\": \"ba\"}\n",
        )
        .unwrap();
        let e = ImageDataset::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("line 1") && e.contains("8 lines of 8 letters"),
            "{e}"
        );
        let no_train = line(1, "eval");
        let e = ImageDataset::parse(no_train.as_bytes()).unwrap_err();
        assert!(e.contains("no training examples"), "{e}");
    }
}
