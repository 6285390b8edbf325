//! The vision skill's images: the 8×8 handwritten digits (UCI's "Optical Recognition of
//! Handwritten Digits", 1,797 images of 0..16 intensities, as scikit-learn's wheel ships them;
//! `models/digits/fetch.sh`), as prompt/completion pairs that a decoder reads pixel by pixel,
//! as Image GPT does: each intensity is one letter, `a` (0) to `q` (16), eight to a line, and the
//! completion is the digit. One decoder, one loss and one delta format then serve every skill.
//!
//! The skill's task is a shifted distribution: the digits moved by one pixel (up, down, left or
//! right, zeros filling in), which a base trained on the centred images has not seen. One image
//! in five (by its line in the file) is held out: neither it nor any shift of it reaches a work
//! unit.

use crate::error::{Error, Result};
use crate::task::pair::Pair;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::path::Path;

/// Pixels per side.
pub const SIDE: usize = 8;
/// Largest intensity.
pub const MAX_INTENSITY: u8 = 16;

/// One image and its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digit {
    /// Intensities 0..=16, row-major.
    pub pixels: [u8; SIDE * SIDE],
    /// The digit shown, 0..=9.
    pub label: u8,
}

/// A one-pixel move of the whole image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    /// As drawn.
    None,
    /// One row up.
    Up,
    /// One row down.
    Down,
    /// One column left.
    Left,
    /// One column right.
    Right,
}

/// The shifts of the vision skill's task.
pub const TASK_SHIFTS: [Shift; 4] = [Shift::Up, Shift::Down, Shift::Left, Shift::Right];

/// Reads the CSV (`64 intensities, label` per line), naming the file and line of any fault.
pub fn read_csv(path: &Path) -> Result<Vec<Digit>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            parse_line(line).map_err(|msg| Error::data(path, format!("line {}: {msg}", i + 1)))
        })
        .collect()
}

fn parse_line(line: &str) -> std::result::Result<Digit, String> {
    let values: Vec<&str> = line.trim().split(',').collect();
    if values.len() != SIDE * SIDE + 1 {
        return Err(format!("{} values, not {}", values.len(), SIDE * SIDE + 1));
    }
    let number = |i: usize, max: u8| -> std::result::Result<u8, String> {
        let v = values[i].trim();
        match v.parse::<u8>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!(
                "value {} is {v:?}, not an integer in 0..={max}",
                i + 1
            )),
        }
    };
    let mut pixels = [0u8; SIDE * SIDE];
    for (i, p) in pixels.iter_mut().enumerate() {
        *p = number(i, MAX_INTENSITY)?;
    }
    Ok(Digit {
        pixels,
        label: number(SIDE * SIDE, 9)?,
    })
}

/// Whether the image on line `index` (from 0) of the file belongs to the held-out set.
pub fn is_held_out(index: usize) -> bool {
    index % 5 == 4
}

/// `digit` moved by `shift`, zeros filling the uncovered edge.
pub fn shifted(digit: &Digit, shift: Shift) -> Digit {
    let (dr, dc): (isize, isize) = match shift {
        Shift::None => (0, 0),
        Shift::Up => (-1, 0),
        Shift::Down => (1, 0),
        Shift::Left => (0, -1),
        Shift::Right => (0, 1),
    };
    let mut pixels = [0u8; SIDE * SIDE];
    for r in 0..SIDE as isize {
        for c in 0..SIDE as isize {
            let (sr, sc) = (r - dr, c - dc);
            if (0..SIDE as isize).contains(&sr) && (0..SIDE as isize).contains(&sc) {
                pixels[(r as usize) * SIDE + c as usize] =
                    digit.pixels[(sr as usize) * SIDE + sc as usize];
            }
        }
    }
    Digit {
        pixels,
        label: digit.label,
    }
}

/// One labelled input of a classifier (the vision skill's MLP).
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// Features (the classifier's `n_input` of them).
    pub input: Vec<f32>,
    /// Class index.
    pub label: u32,
}

/// One image as the classifier's input (intensities scaled to [0, 1]) and label.
pub fn example(digit: &Digit) -> Example {
    Example {
        input: digit
            .pixels
            .iter()
            .map(|&p| f32::from(p) / f32::from(MAX_INTENSITY))
            .collect(),
        label: u32::from(digit.label),
    }
}

/// The image a [`pair`] describes, read back from its prompt (eight lines of eight letters
/// `a`–`q`) and completion (one digit): how the classifier reads the skill's JSONL, which is the
/// same prompt/completion format every skill's data uses. The message says what is wrong.
pub fn from_pair(prompt: &str, completion: &str) -> std::result::Result<Digit, String> {
    let lines: Vec<&str> = prompt.lines().collect();
    if lines.len() != SIDE || lines.iter().any(|l| l.len() != SIDE) {
        return Err(format!(
            "the prompt is not {SIDE} lines of {SIDE} letters a-q: {prompt:?}"
        ));
    }
    let mut pixels = [0u8; SIDE * SIDE];
    for (p, b) in pixels.iter_mut().zip(lines.concat().bytes()) {
        if !(b'a'..=b'a' + MAX_INTENSITY).contains(&b) {
            return Err(format!(
                "the prompt holds {:?}, not a letter a-q",
                char::from(b)
            ));
        }
        *p = b - b'a';
    }
    let label = match completion.as_bytes() {
        [d @ b'0'..=b'9'] => d - b'0',
        _ => return Err(format!("the completion is {completion:?}, not one digit")),
    };
    Ok(Digit { pixels, label })
}

/// The images of one side of the split (the held-out ones, or the others), each under every
/// shift of `shifts`, in file order.
pub fn split(images: &[Digit], held_out: bool, shifts: &[Shift]) -> Vec<Digit> {
    images
        .iter()
        .enumerate()
        .filter(|(i, _)| is_held_out(*i) == held_out)
        .flat_map(|(_, d)| shifts.iter().map(move |&s| shifted(d, s)))
        .collect()
}

/// [`split`]'s images as the classifier's examples.
pub fn examples(images: &[Digit], held_out: bool, shifts: &[Shift]) -> Vec<Example> {
    split(images, held_out, shifts)
        .iter()
        .map(example)
        .collect()
}

/// The prompt/completion pair of one image: eight lines of eight letters, then the digit.
pub fn pair(digit: &Digit) -> Pair {
    let mut prompt = String::with_capacity(SIDE * (SIDE + 1));
    for row in digit.pixels.chunks(SIDE) {
        prompt.extend(row.iter().map(|&p| char::from(b'a' + p)));
        prompt.push('\n');
    }
    Pair {
        prompt,
        completion: char::from(b'0' + digit.label).to_string(),
    }
}

/// Up to `n` distinct pairs drawn with `seed` from the images of one side of the split (the
/// held-out images, or the others), each under every shift of `shifts`, none whose prompt is in
/// `exclude`; fewer when the side holds fewer.
pub fn pairs(
    images: &[Digit],
    held_out: bool,
    shifts: &[Shift],
    seed: u64,
    n: usize,
    exclude: &HashSet<String>,
) -> Vec<Pair> {
    let mut all: Vec<Pair> = Vec::new();
    let mut seen = HashSet::new();
    for digit in split(images, held_out, shifts) {
        let p = pair(&digit);
        if !exclude.contains(&p.prompt) && seen.insert(p.prompt.clone()) {
            all.push(p);
        }
    }
    all.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    all.truncate(n);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit(label: u8) -> Digit {
        let mut pixels = [0u8; 64];
        for (i, p) in pixels.iter_mut().enumerate() {
            *p = ((i * 7 + label as usize) % 17) as u8;
        }
        Digit { pixels, label }
    }

    #[test]
    fn csv_lines_parse_and_faults_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digits.csv");
        let good = |label: u8| {
            let mut v: Vec<String> = (0..64).map(|i| (i % 17).to_string()).collect();
            v.push(label.to_string());
            v.join(",")
        };
        std::fs::write(&path, format!("{}\n{}\n", good(3), good(9))).unwrap();
        let d = read_csv(&path).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].label, d[0].pixels[16], d[1].label), (3, 16, 9));
        for (bad, want) in [
            (
                format!("{}\n{}\n", good(1), "1,2,3"),
                "line 2: 3 values, not 65",
            ),
            (
                format!("{}\n", good(1).replacen('0', "17", 1)),
                "line 1: value 1 is \"17\"",
            ),
            (format!("{},", good(1)), "66 values"),
            (good(1).replace(",1", ",x").to_string(), "not an integer"),
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = read_csv(&path).unwrap_err().to_string();
            assert!(e.contains("digits.csv") && e.contains(want), "{e}");
        }
        let e = read_csv(&dir.path().join("missing.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.csv"), "{e}");
    }

    #[test]
    fn shifts_move_every_pixel_by_one_and_fill_with_zeros() {
        let d = digit(4);
        let right = shifted(&d, Shift::Right);
        let down = shifted(&d, Shift::Down);
        for r in 0..SIDE {
            assert_eq!(right.pixels[r * SIDE], 0);
            assert_eq!(down.pixels[r], 0);
            for c in 1..SIDE {
                assert_eq!(right.pixels[r * SIDE + c], d.pixels[r * SIDE + c - 1]);
            }
        }
        assert_eq!(
            shifted(&shifted(&d, Shift::Left), Shift::Right).pixels[9],
            d.pixels[9]
        );
        assert_eq!(shifted(&d, Shift::None), d);
        assert_eq!(right.label, 4);
    }

    #[test]
    fn a_pair_is_eight_lines_of_letters_and_the_digit() {
        let p = pair(&digit(7));
        let lines: Vec<&str> = p.prompt.lines().collect();
        assert_eq!(lines.len(), 8);
        assert!(lines
            .iter()
            .all(|l| l.len() == 8 && l.bytes().all(|b| (b'a'..=b'q').contains(&b))));
        assert!(p.prompt.ends_with('\n'));
        assert_eq!(p.completion, "7");
        // Intensities 7, 14 and 21 % 17 = 4 are the letters h, o and e.
        assert_eq!(&p.prompt[..3], "hoe");
    }

    #[test]
    fn a_pair_reads_back_as_its_image_and_bad_ones_are_refused() {
        for label in 0..10 {
            let d = shifted(&digit(label), Shift::Up);
            let p = pair(&d);
            assert_eq!(from_pair(&p.prompt, &p.completion).unwrap(), d);
        }
        let p = pair(&digit(3));
        let e = from_pair(&p.prompt, "x").unwrap_err();
        assert!(e.contains("not one digit"), "{e}");
        let e = from_pair(&p.prompt.replacen('a', "z", 1), "3").unwrap_err();
        assert!(e.contains("'z'"), "{e}");
        let e = from_pair("abc\n", "3").unwrap_err();
        assert!(e.contains("8 lines of 8 letters"), "{e}");
    }

    #[test]
    fn held_out_and_training_pairs_come_from_disjoint_images() {
        let images: Vec<Digit> = (0..50)
            .map(|i| digit((i % 10) as u8))
            .map(|mut d| {
                d.pixels[0] = 0;
                d
            })
            .enumerate()
            .map(|(i, mut d)| {
                d.pixels[27] = (i % 17) as u8;
                d.pixels[36] = (i / 17) as u8;
                d
            })
            .collect();
        let train = pairs(&images, false, &TASK_SHIFTS, 1, 1000, &HashSet::new());
        let held = pairs(&images, true, &TASK_SHIFTS, 2, 1000, &HashSet::new());
        assert_eq!(train.len(), 40 * 4);
        assert_eq!(held.len(), 10 * 4);
        let train_prompts: HashSet<_> = train.iter().map(|p| p.prompt.clone()).collect();
        assert!(held.iter().all(|p| !train_prompts.contains(&p.prompt)));
        assert_eq!(
            pairs(&images, false, &TASK_SHIFTS, 1, 5, &HashSet::new()),
            train[..5].to_vec()
        );
        assert_ne!(
            pairs(&images, false, &TASK_SHIFTS, 3, 5, &HashSet::new()),
            train[..5].to_vec()
        );
    }
}
