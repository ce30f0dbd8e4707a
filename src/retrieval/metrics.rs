//! Retrieval figures: recall at K and median rank, image->text and text->image, as VSE papers report them.

use serde::{Deserialize, Serialize};

/// `a` (`[n, d]`) times `b` (`[m, d]`) transposed: `[n, m]` scores.
pub fn scores(a: &[f32], n: usize, b: &[f32], m: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; n * m];
    if n == 0 || m == 0 || d == 0 {
        return out;
    }
    // SAFETY: the slices hold n*d, m*d and n*m values, laid out with the strides given.
    unsafe {
        matrixmultiply::sgemm(
            n,
            d,
            m,
            1.0,
            a.as_ptr(),
            d as isize,
            1,
            b.as_ptr(),
            1,
            d as isize,
            0.0,
            out.as_mut_ptr(),
            m as isize,
            1,
        );
    }
    out
}

/// Recall at 1, 5 and 10 (percent) and the median rank of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Recall {
    pub r1: f64,
    pub r5: f64,
    pub r10: f64,
    pub median_rank: f64,
    /// The same recalls for a random ranking, to read the others against.
    pub chance_r1: f64,
    pub chance_r5: f64,
    pub chance_r10: f64,
    pub queries: usize,
}

/// Both directions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievalScores {
    pub image_to_text: Recall,
    pub text_to_image: Recall,
}

impl RetrievalScores {
    /// The sum of the six recalls, the usual model-selection figure.
    pub fn rsum(&self) -> f64 {
        let (a, b) = (&self.image_to_text, &self.text_to_image);
        a.r1 + a.r5 + a.r10 + b.r1 + b.r5 + b.r10
    }
}

/// Ranks every caption for every image and every image for every caption. `caption_image[j]` is the image
/// caption `j` describes; vectors are rows of `dim` values.
pub fn evaluate_retrieval(images: &[f32], captions: &[f32], caption_image: &[usize], dim: usize) -> RetrievalScores {
    let n = images.len() / dim;
    let m = captions.len() / dim;
    let table = scores(images, n, captions, m, dim);
    let mut image_ranks = Vec::with_capacity(n);
    for image in 0..n {
        let row = &table[image * m..(image + 1) * m];
        let best_own = (0..m).filter(|&j| caption_image[j] == image).map(|j| row[j]).fold(f32::NEG_INFINITY, f32::max);
        if best_own == f32::NEG_INFINITY {
            continue;
        }
        image_ranks.push(1 + row.iter().filter(|&&score| score > best_own).count());
    }
    let mut caption_ranks = Vec::with_capacity(m);
    for (caption, &own) in caption_image.iter().enumerate() {
        let own_score = table[own * m + caption];
        caption_ranks.push(1 + (0..n).filter(|&image| table[image * m + caption] > own_score).count());
    }
    let captions_per_image = m as f64 / n.max(1) as f64;
    RetrievalScores {
        image_to_text: recall(&image_ranks, |k| chance_any_of(m, captions_per_image.round() as usize, k)),
        text_to_image: recall(&caption_ranks, |k| (k as f64 / n.max(1) as f64).min(1.0)),
    }
}

fn recall(ranks: &[usize], chance: impl Fn(usize) -> f64) -> Recall {
    let at = |k: usize| 100.0 * ranks.iter().filter(|&&rank| rank <= k).count() as f64 / ranks.len().max(1) as f64;
    let mut sorted = ranks.to_vec();
    sorted.sort_unstable();
    let median_rank = match sorted.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => sorted[len / 2] as f64,
        len => (sorted[len / 2 - 1] + sorted[len / 2]) as f64 / 2.0,
    };
    Recall {
        r1: at(1),
        r5: at(5),
        r10: at(10),
        median_rank,
        chance_r1: 100.0 * chance(1),
        chance_r5: 100.0 * chance(5),
        chance_r10: 100.0 * chance(10),
        queries: ranks.len(),
    }
}

/// The chance that a random top-`k` of `total` items holds at least one of `relevant`.
fn chance_any_of(total: usize, relevant: usize, k: usize) -> f64 {
    let mut none = 1.0;
    for i in 0..k.min(total) {
        none *= (total - relevant).saturating_sub(i) as f64 / (total - i) as f64;
    }
    1.0 - none
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_reversed_rankings() {
        // Two images, two captions each, 2-d one-hot vectors.
        let images = [1.0, 0.0, 0.0, 1.0];
        let captions = [1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.2, 0.8];
        let scores = evaluate_retrieval(&images, &captions, &[0, 0, 1, 1], 2);
        assert_eq!(scores.image_to_text.r1, 100.0);
        assert_eq!(scores.text_to_image.r1, 100.0);
        assert_eq!(scores.text_to_image.median_rank, 1.0);
        let wrong = evaluate_retrieval(&images, &captions, &[1, 1, 0, 0], 2);
        assert_eq!(wrong.text_to_image.r1, 0.0);
        assert_eq!(wrong.text_to_image.median_rank, 2.0);
        assert_eq!(wrong.image_to_text.median_rank, 3.0);
        assert_eq!(wrong.image_to_text.r5, 100.0);
    }

    #[test]
    fn chance_levels() {
        assert!((chance_any_of(10, 1, 1) - 0.1).abs() < 1e-12);
        assert!((chance_any_of(10, 5, 1) - 0.5).abs() < 1e-12);
        assert_eq!(chance_any_of(10, 1, 10), 1.0);
    }
}
