//! Token sequences padded into one rectangular id array: what every model's forward pass reads, in training
//! and at inference alike.

use crate::text::EOS_ID;

/// Sentences padded into one `[batch, max_len]` array, each followed by `<eos>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddedBatch {
    /// Row-major ids, `rows * width` of them; padding is `<eos>` (id 0), masked out by `lengths`.
    pub ids: Vec<u32>,
    /// Real length of each row, its closing `<eos>` included.
    pub lengths: Vec<usize>,
    pub rows: usize,
    pub width: usize,
}

impl PaddedBatch {
    /// Pads `sentences`, each cut to `max_tokens` tokens before its `<eos>` is appended.
    pub fn new<'a>(sentences: impl IntoIterator<Item = &'a [u32]>, max_tokens: usize) -> PaddedBatch {
        let sentences: Vec<&[u32]> =
            sentences.into_iter().map(|sentence| &sentence[..sentence.len().min(max_tokens)]).collect();
        let lengths: Vec<usize> = sentences.iter().map(|sentence| sentence.len() + 1).collect();
        let width = lengths.iter().copied().max().unwrap_or(0);
        let mut ids = vec![EOS_ID; sentences.len() * width];
        for (row, sentence) in sentences.iter().enumerate() {
            ids[row * width..row * width + sentence.len()].copy_from_slice(sentence);
        }
        PaddedBatch { ids, lengths, rows: sentences.len(), width }
    }

    /// 1.0 where a position holds a real token (or the closing `<eos>`), 0.0 on padding; row-major.
    pub fn mask(&self) -> Vec<f32> {
        let mut mask = vec![0.0; self.rows * self.width];
        for (row, &length) in self.lengths.iter().enumerate() {
            mask[row * self.width..row * self.width + length].fill(1.0);
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_truncates_appends_eos_and_masks() {
        let batch = PaddedBatch::new([&[5, 6, 7][..], &[8][..], &[9, 10, 11, 12, 13][..]], 4);
        assert_eq!((batch.rows, batch.width), (3, 5));
        assert_eq!(batch.lengths, [4, 2, 5]);
        #[rustfmt::skip]
        assert_eq!(batch.ids, [
            5, 6, 7, 0, 0,
            8, 0, 0, 0, 0,
            9, 10, 11, 12, 0,
        ]);
        assert_eq!(&batch.mask()[..5], &[1.0, 1.0, 1.0, 1.0, 0.0]);
        assert_eq!(batch.mask().iter().sum::<f32>(), 11.0);
    }
}
