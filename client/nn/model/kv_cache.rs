//! The keys and values a decoder has computed for a batch of sequences, so that each step of
//! greedy generation computes only every row's new token.
//!
//! The batch starts as right-padded prompts in `width` columns, row `r` holding `lens[r]` real
//! tokens; step `s` then appends one token to every row at column `width + s`, which sits at
//! position `lens[r] + s` of its row. A row's new token sees its own prompt columns and every
//! appended column, never the padding between them.

use candle_core::{Device, Tensor};

/// Cached keys and values of every layer, each (rows, kv_heads, columns, head_dim).
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    lens: Vec<usize>,
    width: usize,
    steps: usize,
}

impl KvCache {
    /// The cache of a prompt pass: each layer's keys and values over `width` columns, and each
    /// row's number of real tokens.
    pub fn new(layers: Vec<(Tensor, Tensor)>, lens: Vec<usize>, width: usize) -> Self {
        Self {
            layers,
            lens,
            width,
            steps: 0,
        }
    }

    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.lens.len()
    }

    /// The position of each row's next token.
    pub fn next_positions(&self) -> Vec<u32> {
        self.lens.iter().map(|l| (l + self.steps) as u32).collect()
    }

    /// The additive mask (rows, 1, 1, columns + 1) of the next token of each row, which sees a
    /// key when the key is one of its row's tokens (or itself) less than `window` positions
    /// back.
    pub fn next_mask(&self, window: usize, device: &Device) -> candle_core::Result<Tensor> {
        let columns = self.width + self.steps + 1;
        let mut values = Vec::with_capacity(self.rows() * columns);
        for &len in &self.lens {
            let at = len + self.steps;
            for c in 0..columns {
                let position = if c < self.width {
                    (c < len).then_some(c)
                } else {
                    Some(len + c - self.width)
                };
                let seen = position.is_some_and(|p| at - p < window);
                values.push(if seen { 0.0 } else { f32::NEG_INFINITY });
            }
        }
        Tensor::from_vec(values, (self.rows(), 1, 1, columns), device)
    }

    /// Appends layer `layer`'s keys and values of the new tokens, each (rows, kv_heads, 1,
    /// head_dim); the layer's keys and values so far, the new ones included.
    pub fn extend(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (ks, vs) = &self.layers[layer];
        let both = (Tensor::cat(&[ks, k], 2)?, Tensor::cat(&[vs, v], 2)?);
        self.layers[layer] = both.clone();
        Ok(both)
    }

    /// Records that every layer has gained the step's token.
    pub fn advance(&mut self) {
        self.steps += 1;
    }

    /// Keeps only the rows `rows` (in that order), as when the others have finished.
    pub fn keep(&mut self, rows: &[usize]) -> candle_core::Result<()> {
        let Some((first, _)) = self.layers.first() else {
            return Ok(());
        };
        let at = Tensor::new(
            rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            first.device(),
        )?;
        for (k, v) in &mut self.layers {
            *k = k.index_select(&at, 0)?;
            *v = v.index_select(&at, 0)?;
        }
        self.lens = rows.iter().map(|&r| self.lens[r]).collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row 0 has 2 prompt tokens of 3 columns, row 1 has 3; after one step, the next token of
    /// row 0 (position 3) sees columns 0, 1 (prompt), 3 (step 0) and 4 (itself), not the
    /// padding at column 2; with a window of 2 it sees only positions 2 and 3.
    #[test]
    fn the_mask_skips_padding_and_honours_the_window() {
        let dev = Device::Cpu;
        let kv = || Tensor::zeros((2, 1, 3, 4), candle_core::DType::F32, &dev).unwrap();
        let mut cache = KvCache::new(vec![(kv(), kv())], vec![2, 3], 3);
        let new = Tensor::zeros((2, 1, 1, 4), candle_core::DType::F32, &dev).unwrap();
        let (k, _) = cache.extend(0, &new, &new).unwrap();
        assert_eq!(k.dims(), &[2, 1, 4, 4]);
        cache.advance();
        assert_eq!(cache.next_positions(), vec![3, 4]);
        let seen = |window| -> Vec<Vec<bool>> {
            let m = cache.next_mask(window, &dev).unwrap();
            let m = m.reshape((2, 5)).unwrap().to_vec2::<f32>().unwrap();
            m.iter()
                .map(|r| r.iter().map(|x| *x == 0.0).collect())
                .collect()
        };
        assert_eq!(
            seen(usize::MAX),
            vec![
                vec![true, true, false, true, true],
                vec![true, true, true, true, true]
            ]
        );
        assert_eq!(
            seen(2),
            vec![
                vec![false, false, false, true, true],
                vec![false, false, false, true, true]
            ]
        );
        cache.keep(&[1]).unwrap();
        assert_eq!(cache.next_positions(), vec![4]);
        assert_eq!(cache.layers[0].0.dims(), &[1, 1, 4, 4]);
    }
}
