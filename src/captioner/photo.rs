//! From a photo to written captions: CNN spatial map -> annotation vectors -> captioner beam search.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, RgbImage};

use super::attention_map::render_attention;
use super::decode::{CaptionRules, attention_of, beam_captions, caption_beam_settings};
use super::trained::{CaptionerLoadError, TrainedCaptioner};
use crate::corpus::manifest::InputFile;
use crate::util::PathError;
use crate::vision::{EfficientNet, ImportError, preprocess};

/// The CNN and the captioner, loaded once.
#[derive(Debug)]
pub struct PhotoCaptioner {
    pub cnn: EfficientNet,
    pub captioner: TrainedCaptioner,
}

/// A written caption.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WrittenCaption {
    pub text: String,
    /// Word ids, the end not included.
    #[serde(skip)]
    pub words: Vec<u32>,
    /// Total log-probability, the end included.
    pub log_prob: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum PhotoCaptionerError {
    #[error(transparent)]
    Captioner(#[from] CaptionerLoadError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(
        "the CNN weights `{path}` are not those the captioner was trained on (hash {found}, its manifest says {expected}, from `{expected_path}`)"
    )]
    CnnMismatch { path: String, found: String, expected: String, expected_path: String },
}

impl PhotoCaptioner {
    /// Loads the captioner onto `device`, the CNN beside it.
    pub fn load(cnn: &Path, captioner: &Path, device: &Device) -> Result<PhotoCaptioner, PhotoCaptionerError> {
        let captioner = TrainedCaptioner::load(captioner, device)?;
        let weights = InputFile::of(cnn)?;
        if weights.blake3 != captioner.manifest.cnn.blake3 {
            return Err(PhotoCaptionerError::CnnMismatch {
                path: cnn.display().to_string(),
                found: weights.blake3,
                expected: captioner.manifest.cnn.blake3.clone(),
                expected_path: captioner.manifest.cnn.path.clone(),
            });
        }
        let cnn = EfficientNet::from_pytorch(cnn, &captioner.device)?;
        Ok(PhotoCaptioner { cnn, captioner })
    }

    /// The photo's annotation vectors `[1, locations, feature_dim]`, at the size the captioner was trained on.
    pub fn annotations(&self, image: &DynamicImage) -> Tensor<3> {
        let size = self.captioner.manifest.image_size;
        let side = size as usize;
        let pixels = preprocess(image, size);
        let input = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, side, side]), &self.captioner.device);
        let spatial = self.cnn.forward(input).spatial; // [1, channels, h, w]
        let [_, channels, height, width] = spatial.dims();
        spatial.permute([0, 2, 3, 1]).reshape([1, height * width, channels])
    }

    /// The finished beams for the photo, best first (at most `beam` of them).
    pub fn captions(&self, image: &DynamicImage, beam: usize) -> Vec<WrittenCaption> {
        self.captions_of(self.annotations(image), beam)
    }

    /// [`PhotoCaptioner::captions`] from the photo's annotation vectors (kept to ask for the attention).
    pub fn captions_of(&self, annotations: Tensor<3>, beam: usize) -> Vec<WrittenCaption> {
        let settings = caption_beam_settings(beam, &CaptionRules::of(&self.captioner.manifest.config));
        beam_captions(&self.captioner.model, annotations, &settings)
            .into_iter()
            .map(|finished| WrittenCaption {
                text: self.captioner.vocabulary.decode(&finished.words),
                words: finished.words,
                log_prob: finished.log_prob,
            })
            .collect()
    }

    /// Attention weights of each word of `caption` and of its end, `[words + 1][locations]`, given the
    /// annotation vectors it was written from.
    pub fn attention(&self, annotations: Tensor<3>, caption: &WrittenCaption) -> Vec<Vec<f32>> {
        attention_of(&self.captioner.model, annotations, &caption.words)
    }

    /// Where each word of `caption` looked: the photo as the captioner saw it, then a tile per word and
    /// one for the end (`caption --attention`, the web page).
    pub fn attention_picture(
        &self,
        image: &DynamicImage,
        annotations: Tensor<3>,
        caption: &WrittenCaption,
    ) -> RgbImage {
        let maps = self.attention(annotations, caption);
        let mut labels: Vec<String> = caption.text.split_whitespace().map(String::from).collect();
        labels.push("<end>".into());
        let crop = preprocess::resize_and_crop(image, self.captioner.manifest.image_size);
        render_attention(&crop, self.captioner.manifest.grid, &labels.into_iter().zip(maps).collect::<Vec<_>>())
    }

    /// [`attention_picture`](Self::attention_picture) of a caption given as text (words the captioner
    /// does not know are left out): `None` when no word is left.
    pub fn attention_picture_of_text(&self, image: &DynamicImage, text: &str) -> Option<RgbImage> {
        let words = self.captioner.vocabulary.encode(text);
        if words.is_empty() {
            return None;
        }
        let caption = WrittenCaption { text: self.captioner.vocabulary.decode(&words), words, log_prob: 0.0 };
        Some(self.attention_picture(image, self.annotations(image), &caption))
    }
}
