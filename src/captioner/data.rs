//! What a captioner trains and is evaluated on: the photos of one or more features folders with spatial
//! maps, each with its captions, assigned to train / valid / test by the same hash of the image key as the
//! VSE's split.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use crate::captions::{Split, split_of};
use crate::config::CaptionerConfig;
use crate::corpus::manifest::InputFile;
use crate::features::FeaturesInput;
use crate::features::{FeatureSet, FeaturesError, SpatialInfo};
use crate::text::vocab::Vocabulary;

/// One photo: where its annotation vectors are and its captions.
#[derive(Debug, Clone)]
pub struct CaptionerImage {
    pub key: String,
    pub split: Split,
    /// Row in [`CaptionerData::annotations`].
    pub row: usize,
    /// Caption texts (the references of evaluation).
    pub texts: Vec<String>,
    /// The same captions as vocabulary ids.
    pub captions: Vec<Vec<u32>>,
}

/// Everything a captioner run reads.
#[derive(Debug, Clone)]
pub struct CaptionerData {
    pub images: Vec<CaptionerImage>,
    /// `[images, locations * feature_dim]` row-major.
    pub annotations: Vec<f32>,
    /// `[images, pooled_dim]` row-major: the pooled features (what a VSE reads) of the same photos.
    pub pooled: Vec<f32>,
    pub pooled_dim: usize,
    pub spatial: SpatialInfo,
    pub vocabulary: Vocabulary,
    pub cnn: InputFile,
    pub image_size: u32,
    pub inputs: Vec<FeaturesInput>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptionerDataError {
    #[error(transparent)]
    Features(#[from] FeaturesError),
    #[error(
        "`{first}` and `{other}` hold different features ({first_what} vs {other_what}); extract both with the same `--cnn` and `--image-size`"
    )]
    Mixed { first: PathBuf, other: PathBuf, first_what: String, other_what: String },
    #[error("no features folder given")]
    NoInputs,
}

impl CaptionerData {
    /// Reads the features folders. The vocabulary is built from the training images' captions (words seen
    /// `min_word_count` times, at most `vocab_size`) unless one is given (evaluating a trained model).
    pub fn load(
        dirs: &[PathBuf],
        config: &CaptionerConfig,
        vocabulary: Option<Vocabulary>,
    ) -> Result<CaptionerData, CaptionerDataError> {
        let sets: Vec<FeatureSet> = dirs.iter().map(|dir| FeatureSet::open(dir)).collect::<Result<_, _>>()?;
        let first = sets.first().ok_or(CaptionerDataError::NoInputs)?;
        let mut tables = Vec::new();
        let mut spatial: Option<SpatialInfo> = None;
        for set in &sets {
            let (info, table) = set.spatial()?;
            let describe = |set: &FeatureSet, info: &SpatialInfo| {
                format!(
                    "CNN {}, {} px, {}x{}x{}",
                    set.manifest.cnn.blake3, set.manifest.image_size, info.grid[0], info.grid[1], info.dim
                )
            };
            if let Some(first_info) = &spatial
                && (first_info != &info || set.manifest.cnn.blake3 != first.manifest.cnn.blake3)
            {
                return Err(CaptionerDataError::Mixed {
                    first: first.dir.clone(),
                    other: set.dir.clone(),
                    first_what: describe(first, first_info),
                    other_what: describe(set, &info),
                });
            }
            spatial = Some(info);
            tables.push(table);
        }
        let spatial = spatial.ok_or(CaptionerDataError::NoInputs)?;
        let split = |key: &str| split_of(key, config.valid_percent, config.test_percent);
        let vocabulary = match vocabulary {
            Some(vocabulary) => vocabulary,
            None => {
                let training =
                    sets.iter().flat_map(|set| &set.images).filter(|image| split(&image.key) == Split::Train);
                let texts = training.flat_map(|image| image.captions.iter().map(|caption| caption.text.as_str()));
                Vocabulary::from_texts(texts, config.vocab_size, config.min_word_count)
            }
        };
        let mut images = Vec::new();
        let mut annotations = Vec::new();
        let mut pooled = Vec::new();
        for (set, table) in sets.iter().zip(&tables) {
            pooled.extend_from_slice(&set.pooled.values);
            for (index, image) in set.images.iter().enumerate() {
                images.push(CaptionerImage {
                    key: image.key.clone(),
                    split: split(&image.key),
                    row: images.len(),
                    texts: image.captions.iter().map(|caption| caption.text.clone()).collect(),
                    captions: image.captions.iter().map(|caption| vocabulary.encode(&caption.text)).collect(),
                });
                annotations.extend_from_slice(table.row(index));
            }
        }
        Ok(CaptionerData {
            images,
            annotations,
            pooled,
            pooled_dim: first.pooled.columns,
            spatial,
            vocabulary,
            cnn: first.manifest.cnn.clone(),
            image_size: first.manifest.image_size,
            inputs: sets.iter().map(FeaturesInput::of).collect(),
        })
    }

    pub fn split(&self, split: Split) -> Vec<&CaptionerImage> {
        self.images.iter().filter(|image| image.split == split).collect()
    }

    /// Values per photo: `locations * feature_dim`.
    pub fn row_len(&self) -> usize {
        self.spatial.locations() * self.spatial.dim
    }

    pub fn annotation_row(&self, image: &CaptionerImage) -> &[f32] {
        &self.annotations[image.row * self.row_len()..(image.row + 1) * self.row_len()]
    }

    pub fn pooled_row(&self, image: &CaptionerImage) -> &[f32] {
        &self.pooled[image.row * self.pooled_dim..(image.row + 1) * self.pooled_dim]
    }

    /// The annotation vectors of `photos` as one `[photos, locations, feature_dim]` tensor.
    pub fn annotation_batch(&self, photos: &[&CaptionerImage], device: &Device) -> Tensor<3> {
        let values: Vec<f32> = photos.iter().flat_map(|photo| self.annotation_row(photo)).copied().collect();
        let shape = [photos.len(), self.spatial.locations(), self.spatial.dim];
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// Folders as recorded in a manifest, back to paths.
    pub fn dirs_of(inputs: &[FeaturesInput]) -> Vec<PathBuf> {
        inputs.iter().map(|input| Path::new(&input.dir).to_path_buf()).collect()
    }
}
