//! Any bytes as a work unit's `data` shard (plain or zstd-compressed), read as each skill's
//! app reads it: the decoders' prompt/completion examples tokenized with the tiny skill's
//! byte vocabulary, the vision skill's images, the memory skill's query/passage pairs, and the
//! planner's grid problems and plans. Each returns its examples or a message.

use aginet::learn::retrieve::PairDataset;
use aginet::task::grid::Problem;
use aginet::task::image_data::ImageDataset;
use aginet::text::data::{decompress_if_zstd, parse_examples, Dataset};
use aginet::text::tokenizer::ByteTokenizer;

/// The tiny skill's sequence bound.
const MAX_SEQ_LEN: usize = 128;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(bytes) = decompress_if_zstd(data.to_vec()) else {
        return;
    };
    let tok = ByteTokenizer;
    let _ = Dataset::parse(&bytes, &tok, MAX_SEQ_LEN);
    let _ = ImageDataset::parse(&bytes);
    let _ = PairDataset::parse(&bytes, &tok, MAX_SEQ_LEN);
    if let Ok(examples) = parse_examples(&bytes) {
        for (_, ex) in examples {
            if let Ok(problem) = Problem::parse(ex.prompt.trim_start()) {
                let _ = problem.check(&ex.completion);
            }
        }
    }
}
