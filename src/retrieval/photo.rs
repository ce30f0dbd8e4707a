//! From a photo to its nearest bank captions: CNN feature -> VSE image vector -> bank search.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::DynamicImage;

use super::bank::{BankError, CaptionBank};
use super::trained::{TrainedVse, VseLoadError};
use crate::corpus::manifest::InputFile;
use crate::util::PathError;
use crate::util::values::f32_values;
use crate::vision::{EfficientNet, ImportError, preprocess};

/// The three models retrieval needs, loaded once.
#[derive(Debug)]
pub struct PhotoRetriever {
    pub cnn: EfficientNet,
    pub vse: TrainedVse,
    pub bank: CaptionBank,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrieverError {
    #[error(transparent)]
    Vse(#[from] VseLoadError),
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(
        "the CNN weights `{path}` are not those the VSE was trained on (hash {found}, the VSE's manifest says {expected}, from `{expected_path}`)"
    )]
    CnnMismatch { path: String, found: String, expected: String, expected_path: String },
}

impl PhotoRetriever {
    /// Loads the VSE onto `device` (the CNN goes beside it) and the caption bank.
    pub fn load(cnn: &Path, vse: &Path, bank: &Path, device: &Device) -> Result<PhotoRetriever, RetrieverError> {
        let vse = TrainedVse::load(vse, device)?;
        let bank = CaptionBank::load(bank)?;
        bank.check_vse(&vse)?;
        let weights = InputFile::of(cnn)?;
        if weights.blake3 != vse.manifest.cnn.blake3 {
            return Err(RetrieverError::CnnMismatch {
                path: cnn.display().to_string(),
                found: weights.blake3,
                expected: vse.manifest.cnn.blake3.clone(),
                expected_path: vse.manifest.cnn.path.clone(),
            });
        }
        let cnn = EfficientNet::from_pytorch(cnn, &vse.device)?;
        Ok(PhotoRetriever { cnn, vse, bank })
    }

    /// The photo's unit vector in the VSE space.
    pub fn image_vector(&self, image: &DynamicImage) -> Vec<f32> {
        let size = self.cnn.image_size as usize;
        let pixels = preprocess(image, self.cnn.image_size);
        let input = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, size, size]), &self.vse.device);
        let pooled = f32_values(self.cnn.forward(input).pooled);
        self.vse.embed_features(&pooled)
    }

    /// The `k` nearest bank captions (row, cosine), best first.
    pub fn nearest(&self, image: &DynamicImage, k: usize) -> Vec<(usize, f32)> {
        self.bank.nearest(&self.image_vector(image), k)
    }
}
