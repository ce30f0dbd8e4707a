//! The pairs a VSE trains and is evaluated on: images from one or more features folders, each with its
//! captions tokenized, assigned to train / valid / test by image.

use std::path::PathBuf;

use crate::captions::{Split, split_of};
use crate::config::VseConfig;
use crate::corpus::manifest::InputFile;
use crate::features::{FeatureSet, FeaturesError, FeaturesInput};
use crate::text::vocab::Vocabulary;

/// One image with its feature row and captions.
#[derive(Debug, Clone)]
pub struct VseImage {
    pub key: String,
    pub split: Split,
    /// Row in [`VseData::features`].
    pub row: usize,
    pub caption_ids: Vec<String>,
    pub captions: Vec<Vec<u32>>,
}

/// Everything a VSE run reads.
#[derive(Debug, Clone)]
pub struct VseData {
    pub images: Vec<VseImage>,
    /// `[images, image_dim]` row-major.
    pub features: Vec<f32>,
    pub image_dim: usize,
    pub vocabulary: Vocabulary,
    pub cnn: InputFile,
    pub image_size: u32,
    pub inputs: Vec<FeaturesInput>,
}

#[derive(Debug, thiserror::Error)]
pub enum VseDataError {
    #[error(transparent)]
    Features(#[from] FeaturesError),
    #[error(
        "`{first}` and `{other}` hold features of different CNN weights ({first_hash} vs {other_hash}); extract both with the same `--cnn`"
    )]
    MixedCnn { first: PathBuf, other: PathBuf, first_hash: String, other_hash: String },
    #[error("no features folder given")]
    NoInputs,
}

impl VseData {
    /// Reads the features folders. The vocabulary is built from every caption they hold (also those of
    /// images without features) unless one is given (evaluating a trained model).
    pub fn load(dirs: &[PathBuf], config: &VseConfig, vocabulary: Option<Vocabulary>) -> Result<VseData, VseDataError> {
        let sets: Vec<FeatureSet> = dirs.iter().map(|dir| FeatureSet::open(dir)).collect::<Result<_, _>>()?;
        let first = sets.first().ok_or(VseDataError::NoInputs)?;
        for other in &sets[1..] {
            if other.manifest.cnn.blake3 != first.manifest.cnn.blake3 || other.pooled.columns != first.pooled.columns {
                return Err(VseDataError::MixedCnn {
                    first: first.dir.clone(),
                    other: other.dir.clone(),
                    first_hash: first.manifest.cnn.blake3.clone(),
                    other_hash: other.manifest.cnn.blake3.clone(),
                });
            }
        }
        let vocabulary = match vocabulary {
            Some(vocabulary) => vocabulary,
            None => {
                let mut lines = Vec::new();
                for set in &sets {
                    lines.extend(set.all_captions()?);
                }
                Vocabulary::from_texts(lines.iter().map(|line| line.caption.text.as_str()), config.vocab_size, 1)
            }
        };
        let mut images = Vec::new();
        let mut features = Vec::new();
        for set in &sets {
            for (index, image) in set.images.iter().enumerate() {
                images.push(VseImage {
                    key: image.key.clone(),
                    split: split_of(&image.key, config.valid_percent, config.test_percent),
                    row: images.len(),
                    caption_ids: image.captions.iter().map(|caption| caption.id.clone()).collect(),
                    captions: image.captions.iter().map(|caption| vocabulary.encode(&caption.text)).collect(),
                });
                features.extend_from_slice(set.pooled.row(index));
            }
        }
        Ok(VseData {
            images,
            features,
            image_dim: first.pooled.columns,
            vocabulary,
            cnn: first.manifest.cnn.clone(),
            image_size: first.manifest.image_size,
            inputs: sets.iter().map(FeaturesInput::of).collect(),
        })
    }

    pub fn split(&self, split: Split) -> Vec<&VseImage> {
        self.images.iter().filter(|image| image.split == split).collect()
    }

    pub fn feature_row(&self, image: &VseImage) -> &[f32] {
        &self.features[image.row * self.image_dim..(image.row + 1) * self.image_dim]
    }
}
