//! A VSE's recall on held-out images: what `train-vse` logs at each validation and `evaluate vse` reports.

use std::path::PathBuf;

use super::data::{VseData, VseDataError, VseImage};
use super::embed::{embed_captions, embed_images};
use super::metrics::{RetrievalScores, evaluate_retrieval};
use super::trained::TrainedVse;
use crate::captions::Split;
use crate::config::VseConfig;
use crate::model::vse::Vse;

/// Why a trained VSE could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateVseError {
    #[error(transparent)]
    Data(#[from] VseDataError),
    #[error("the features were extracted with other CNN weights ({found}) than the VSE was trained on ({expected})")]
    OtherCnn { expected: String, found: String },
    #[error("the {0:?} split has no images")]
    NoImages(Split),
}

/// `vse`'s recall on `split` of `features` (default: the folders it was trained on), and the images counted.
pub fn evaluate_trained_vse(
    vse: &TrainedVse,
    features: &[PathBuf],
    split: Split,
) -> Result<(RetrievalScores, usize), EvaluateVseError> {
    let features: Vec<PathBuf> = if features.is_empty() {
        vse.manifest.features.iter().map(|input| PathBuf::from(&input.dir)).collect()
    } else {
        features.to_vec()
    };
    let config = &vse.manifest.config;
    let data = VseData::load(&features, config, Some(vse.vocabulary.clone()))?;
    if data.cnn.blake3 != vse.manifest.cnn.blake3 {
        return Err(EvaluateVseError::OtherCnn {
            expected: vse.manifest.cnn.blake3.clone(),
            found: data.cnn.blake3.clone(),
        });
    }
    let images = data.split(split);
    let scores = retrieval_scores(&vse.model, &data, &images, config).ok_or(EvaluateVseError::NoImages(split))?;
    Ok((scores, images.len()))
}

/// Recall of `images` (every caption of theirs is a query and a target); `None` without images.
pub fn retrieval_scores(
    model: &Vse,
    data: &VseData,
    images: &[&VseImage],
    config: &VseConfig,
) -> Option<RetrievalScores> {
    if images.is_empty() {
        return None;
    }
    let device = crate::device::of_module(model);
    let features: Vec<f32> = images.iter().flat_map(|image| data.feature_row(image)).copied().collect();
    let image_vectors = embed_images(model, &features, data.image_dim, &device);
    let mut captions = Vec::new();
    let mut caption_image = Vec::new();
    for (index, image) in images.iter().enumerate() {
        for caption in &image.captions {
            captions.push(caption.clone());
            caption_image.push(index);
        }
    }
    let caption_vectors = embed_captions(model, &captions, config.max_tokens, &device);
    Some(evaluate_retrieval(&image_vectors, &caption_vectors, &caption_image, config.embed_dim))
}
