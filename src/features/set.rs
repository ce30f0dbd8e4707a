//! Reading a features folder back.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::captions::{Caption, CaptionedImage, DatasetKind};
use crate::corpus::manifest::{CreatedBy, InputFile};
use crate::util::PathError;
use crate::util::tensor_file::{Table, TensorFileError, read_table};

pub const FEATURES_FILE: &str = "features.safetensors";
pub const IMAGES_FILE: &str = "images.jsonl";
pub const CAPTIONS_FILE: &str = "captions.jsonl";
pub const MANIFEST_FILE: &str = "manifest.json";
/// Spatial maps (with `extract-features --spatial`), f16: `[images, locations * dim]`.
pub const SPATIAL_FILE: &str = "spatial.safetensors";
pub const SPATIAL_TABLE: &str = "spatial";
pub const FORMAT: &str = "storytool-image-features";

/// An image that was named but not used, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedImage {
    pub file_name: String,
    pub reason: String,
}

/// `manifest.json` of a features folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeaturesManifest {
    pub format: String,
    pub created_by: CreatedBy,
    pub dataset: DatasetKind,
    pub annotations: InputFile,
    pub images_dir: String,
    /// The CNN weights file and its hash: features from different weights do not mix.
    pub cnn: InputFile,
    pub image_size: u32,
    pub feature_dim: usize,
    /// The stored spatial maps, when extracted with `--spatial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spatial: Option<SpatialInfo>,
    pub images_named: usize,
    pub images_extracted: usize,
    pub captions: usize,
    pub missing: Vec<SkippedImage>,
    pub unreadable: Vec<SkippedImage>,
    pub seconds: f64,
}

/// The spatial maps of a features folder: per image, `grid[0] * grid[1]` annotation vectors of `dim` values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpatialInfo {
    pub grid: [usize; 2],
    pub dim: usize,
    /// How they are stored on disk.
    pub precision: String,
}

impl SpatialInfo {
    /// Annotation vectors per image.
    pub fn locations(&self) -> usize {
        self.grid[0] * self.grid[1]
    }
}

/// A caption line of `captions.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionLine {
    pub image: String,
    #[serde(flatten)]
    pub caption: Caption,
}

/// A features folder in memory.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    pub dir: PathBuf,
    pub manifest: FeaturesManifest,
    pub images: Vec<CaptionedImage>,
    pub pooled: Table,
}

#[derive(Debug, thiserror::Error)]
pub enum FeaturesError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Tensor(#[from] TensorFileError),
    #[error("`{path}`, line {line}: {message}")]
    Format { path: PathBuf, line: usize, message: String },
    #[error("`{0}` holds no spatial feature maps\n\nhint: extract them with `storytool extract-features --spatial`")]
    NoSpatial(PathBuf),
    #[error("`{path}` lists {listed} images but its feature table has {rows} rows (or rows of the wrong size)")]
    Inconsistent { path: PathBuf, listed: usize, rows: usize },
}

impl FeatureSet {
    pub fn open(dir: &Path) -> Result<FeatureSet, FeaturesError> {
        let manifest: FeaturesManifest = read_json(&dir.join(MANIFEST_FILE))?;
        if manifest.format != FORMAT {
            return Err(FeaturesError::Format {
                path: dir.join(MANIFEST_FILE),
                line: 1,
                message: format!("expected format `{FORMAT}`, found `{}`", manifest.format),
            });
        }
        let images: Vec<CaptionedImage> = read_jsonl(&dir.join(IMAGES_FILE))?;
        let pooled = read_table(&dir.join(FEATURES_FILE), "pooled")?;
        if pooled.rows != images.len() {
            return Err(FeaturesError::Inconsistent {
                path: dir.to_path_buf(),
                listed: images.len(),
                rows: pooled.rows,
            });
        }
        Ok(FeatureSet { dir: dir.to_path_buf(), manifest, images, pooled })
    }

    /// The spatial maps, `[images, locations * dim]`; an error naming the fix when they were not extracted.
    pub fn spatial(&self) -> Result<(SpatialInfo, Table), FeaturesError> {
        let Some(info) = self.manifest.spatial.clone() else {
            return Err(FeaturesError::NoSpatial(self.dir.clone()));
        };
        let table = read_table(&self.dir.join(SPATIAL_FILE), SPATIAL_TABLE)?;
        if table.rows != self.images.len() || table.columns != info.locations() * info.dim {
            return Err(FeaturesError::Inconsistent {
                path: self.dir.join(SPATIAL_FILE),
                listed: self.images.len(),
                rows: table.rows,
            });
        }
        Ok((info, table))
    }

    /// Every caption of the annotation file (also of images without features).
    pub fn all_captions(&self) -> Result<Vec<CaptionLine>, FeaturesError> {
        FeatureSet::captions_in(&self.dir)
    }

    /// [`FeatureSet::all_captions`] of the features folder `dir`, without reading its features.
    pub fn captions_in(dir: &Path) -> Result<Vec<CaptionLine>, FeaturesError> {
        read_jsonl(&dir.join(CAPTIONS_FILE))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, FeaturesError> {
    let bytes = std::fs::read(path).map_err(|error| PathError::new("read", path, error))?;
    serde_json::from_slice(&bytes).map_err(|error| FeaturesError::Format {
        path: path.to_path_buf(),
        line: error.line(),
        message: error.to_string(),
    })
}

pub(crate) fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, FeaturesError> {
    let file = std::fs::File::open(path).map_err(|error| PathError::new("open", path, error))?;
    let mut rows = Vec::new();
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|error| PathError::new("read", path, error))?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(serde_json::from_str(&line).map_err(|error| FeaturesError::Format {
            path: path.to_path_buf(),
            line: index + 1,
            message: error.to_string(),
        })?);
    }
    Ok(rows)
}

/// A features folder a model was trained on, as recorded in its manifest (VSE, captioner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeaturesInput {
    pub dir: String,
    pub annotations: InputFile,
    pub images: usize,
}

impl FeaturesInput {
    pub fn of(set: &FeatureSet) -> FeaturesInput {
        FeaturesInput {
            dir: set.dir.display().to_string(),
            annotations: set.manifest.annotations.clone(),
            images: set.images.len(),
        }
    }
}
