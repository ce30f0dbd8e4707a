//! The visual-semantic embedding (Kiros, Salakhutdinov & Zemel 2014, "Unifying Visual-Semantic Embeddings
//! with Multimodal Neural Language Models"; Faghri et al. 2018, VSE++): a GRU reads a caption, a linear map
//! projects the CNN feature of an image, both are L2-normalised, and a hinge loss pulls each image towards
//! its own caption and away from the other captions of the batch (and each caption from the other images).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Gru, GruConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::model::batch::PaddedBatch;
use crate::util::values::f32_values;

/// Sizes of the model. The paper: words 300, joint space 1024, VGG-19 features 4096.
#[derive(Config, Debug)]
pub struct VseModelConfig {
    pub vocab_size: usize,
    pub word_dim: usize,
    pub embed_dim: usize,
    pub image_dim: usize,
}

#[derive(Module, Debug)]
pub struct Vse {
    pub embedding: Embedding,
    pub caption_encoder: Gru,
    pub image_projection: Linear,
}

/// A batch of captions on a device.
#[derive(Debug, Clone)]
pub struct CaptionTensors {
    /// `[batch, len]` ids, each caption closed by `<eos>`.
    pub ids: Tensor<2, Int>,
    /// Position of each caption's `<eos>`, `[batch, 1, embed_dim]`, repeated along the last axis.
    pub last: Tensor<3, Int>,
}

impl CaptionTensors {
    pub fn new(batch: &PaddedBatch, embed_dim: usize, device: &Device) -> CaptionTensors {
        let ids: Vec<i64> = batch.ids.iter().map(|&id| i64::from(id)).collect();
        let last: Vec<i64> =
            batch.lengths.iter().flat_map(|&length| std::iter::repeat_n(length as i64 - 1, embed_dim)).collect();
        CaptionTensors {
            ids: Tensor::from_data(TensorData::new(ids, [batch.rows, batch.width]), device),
            last: Tensor::from_data(TensorData::new(last, [batch.rows, 1, embed_dim]), device),
        }
    }
}

impl VseModelConfig {
    pub fn init(&self, device: &Device) -> Vse {
        Vse {
            embedding: EmbeddingConfig::new(self.vocab_size, self.word_dim)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.1 })
                .init(device),
            caption_encoder: GruConfig::new(self.word_dim, self.embed_dim, true).init(device),
            image_projection: LinearConfig::new(self.image_dim, self.embed_dim).init(device),
        }
    }
}

impl Vse {
    /// Replaces rows of the word embedding table: `rows[i]` (of `word_dim` values) for word id `ids[i]`.
    pub fn set_word_vectors(self, ids: &[usize], rows: &[f32]) -> Vse {
        let [vocab, word] = self.embedding.weight.dims();
        let mut table = f32_values(self.embedding.weight.val());
        for (&id, row) in ids.iter().zip(rows.chunks_exact(word)) {
            table[id * word..(id + 1) * word].copy_from_slice(row);
        }
        let device = self.embedding.weight.device();
        let weight = Tensor::<2>::from_data(TensorData::new(table, [vocab, word]), &device);
        let mut model = self;
        model.embedding.weight = Param::from_tensor(weight);
        model
    }

    /// Unit vectors of captions, `[batch, embed_dim]`.
    pub fn encode_captions(&self, captions: &CaptionTensors) -> Tensor<2> {
        let states = self.caption_encoder.forward(self.embedding.forward(captions.ids.clone()), None);
        l2_normalise(states.gather(1, captions.last.clone()).squeeze_dim(1))
    }

    /// Unit vectors of image features `[batch, image_dim]`, `[batch, embed_dim]`.
    pub fn encode_images(&self, features: Tensor<2>) -> Tensor<2> {
        l2_normalise(self.image_projection.forward(features))
    }

    /// The hinge loss per pair, where row `i` of `images` and of `captions` belong together.
    pub fn loss(&self, images: Tensor<2>, captions: &CaptionTensors, margin: f32, max_violation: bool) -> Tensor<1> {
        contrastive_loss(self.encode_images(images), self.encode_captions(captions), margin, max_violation)
    }
}

/// Rows scaled to unit length.
pub fn l2_normalise(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-8);
    x / norm
}

/// VSE's loss: for each matching pair (the diagonal of the score matrix), `max(0, margin - s(i, c) + s(i, c'))`
/// over the other captions `c'` and `max(0, margin - s(i, c) + s(i', c))` over the other images `i'`; summed
/// over negatives, or only the hardest one of each (VSE++'s max violation). Averaged over the pairs.
pub fn contrastive_loss(images: Tensor<2>, captions: Tensor<2>, margin: f32, max_violation: bool) -> Tensor<1> {
    let [batch, _] = images.dims();
    let device = images.device();
    let scores = images.matmul(captions.transpose()); // [images, captions]
    let identity: Vec<f32> =
        (0..batch * batch).map(|index| if index / batch == index % batch { 1.0 } else { 0.0 }).collect();
    let eye = Tensor::<2>::from_data(TensorData::new(identity, [batch, batch]), &device);
    let off_diagonal = eye.clone().neg().add_scalar(1.0);
    let positive_row = (scores.clone() * eye.clone()).sum_dim(1); // [batch, 1]: s(i, c_i) per image row
    let positive_column = (scores.clone() * eye).sum_dim(0); // [1, batch]: s(i_j, c_j) per caption column
    let caption_costs = relu(scores.clone().sub(positive_row).add_scalar(margin)) * off_diagonal.clone();
    let image_costs = relu(scores.sub(positive_column).add_scalar(margin)) * off_diagonal;
    let total = if max_violation {
        caption_costs.max_dim(1).sum() + image_costs.max_dim(0).sum()
    } else {
        caption_costs.sum() + image_costs.sum()
    };
    total.div_scalar(batch as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(rows: &[&[f32]]) -> Tensor<2> {
        let columns = rows[0].len();
        let values: Vec<f32> = rows.iter().flat_map(|row| row.iter().copied()).collect();
        Tensor::from_data(TensorData::new(values, [rows.len(), columns]), &Device::flex())
    }

    #[test]
    fn loss_matches_a_hand_computed_case() {
        // Unit vectors: image 0 = caption 0 = e0, image 1 = caption 1 = e1: scores [[1,0],[0,1]].
        let images = tensor(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let aligned: f32 = contrastive_loss(images.clone(), images.clone(), 0.2, false).into_scalar();
        assert!(aligned.abs() < 1e-6, "{aligned}");
        // Captions swapped: every positive scores 0, every negative 1: each of 4 hinge terms costs 1.2.
        let swapped = tensor(&[&[0.0, 1.0], &[1.0, 0.0]]);
        let loss: f32 = contrastive_loss(images.clone(), swapped.clone(), 0.2, false).into_scalar();
        assert!((loss - 4.0 * 1.2 / 2.0).abs() < 1e-5, "{loss}");
        let hardest: f32 = contrastive_loss(images, swapped, 0.2, true).into_scalar();
        assert!((hardest - 4.0 * 1.2 / 2.0).abs() < 1e-5, "{hardest}");
    }

    #[test]
    fn max_violation_keeps_only_the_hardest_negative() {
        // Three images, captions: positives score 0.5; for image 0 two negatives violate by different amounts.
        let images = tensor(&[&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0], &[0.0, 0.0, 1.0]]);
        let captions = tensor(&[&[0.5, 0.0, 0.0], &[0.4, 0.5, 0.0], &[0.2, 0.0, 0.5]]);
        let sum: f32 = contrastive_loss(images.clone(), captions.clone(), 0.2, false).into_scalar();
        let max: f32 = contrastive_loss(images, captions, 0.2, true).into_scalar();
        // Image 0 vs captions 1, 2: 0.2 - 0.5 + 0.4 = 0.1 and 0.2 - 0.5 + 0.2 = -0.1 -> 0.1 (and the same terms
        // seen from captions 1 and 2 against image 0: caption 1 vs image 0 scores 0.4 -> 0.1, caption 2 -> 0).
        assert!((sum - (0.1 + 0.1) / 3.0).abs() < 1e-5, "{sum}");
        assert!((max - (0.1 + 0.1) / 3.0).abs() < 1e-5, "{max}");
    }
}
