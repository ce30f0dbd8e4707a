//! Captions and image features through a VSE, in batches, to plain row-major vectors.

use burn::tensor::{Device, Tensor, TensorData};

use crate::model::batch::PaddedBatch;
use crate::model::vse::{CaptionTensors, Vse};
use crate::util::values::f32_values;

/// Captions per forward pass when embedding many.
const BATCH: usize = 256;

/// Unit vectors of tokenized captions (each cut to `max_tokens`), `[captions, embed_dim]` row-major.
pub fn embed_captions(model: &Vse, captions: &[Vec<u32>], max_tokens: usize, device: &Device) -> Vec<f32> {
    let embed_dim = model.image_projection.weight.dims()[1];
    // Sorting by length keeps padding (wasted GRU steps) small; rows go back to their places afterwards.
    let mut order: Vec<usize> = (0..captions.len()).collect();
    order.sort_by_key(|&index| captions[index].len());
    let mut out = vec![0.0f32; captions.len() * embed_dim];
    for chunk in order.chunks(BATCH) {
        let batch = PaddedBatch::new(chunk.iter().map(|&index| captions[index].as_slice()), max_tokens);
        let vectors = model.encode_captions(&CaptionTensors::new(&batch, embed_dim, device));
        let values = f32_values(vectors);
        for (row, &index) in chunk.iter().enumerate() {
            out[index * embed_dim..(index + 1) * embed_dim]
                .copy_from_slice(&values[row * embed_dim..(row + 1) * embed_dim]);
        }
    }
    out
}

/// Unit vectors of image features (`[images, image_dim]` row-major), `[images, embed_dim]`.
pub fn embed_images(model: &Vse, features: &[f32], image_dim: usize, device: &Device) -> Vec<f32> {
    let mut out = Vec::new();
    for chunk in features.chunks(BATCH * image_dim) {
        let rows = chunk.len() / image_dim;
        let input = Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [rows, image_dim]), device);
        out.extend(f32_values(model.encode_images(input)));
    }
    out
}
