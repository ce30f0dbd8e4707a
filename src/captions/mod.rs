//! Captioned-image datasets in their published formats: COCO's `captions_*.json` and Flickr8k's
//! `captions.txt`. Both read into one shape, a list of images with their captions, keyed by strings that
//! stay unique when datasets are mixed (`coco:397133`, `flickr8k:1000268201_693b08cb0e.jpg`).

mod coco;
mod flickr;
pub mod split;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use coco::read_coco;
pub use flickr::read_flickr8k;
pub use split::{Split, split_of};

/// Which published format a dataset came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    Coco,
    Flickr8k,
}

impl DatasetKind {
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Coco => "coco",
            DatasetKind::Flickr8k => "flickr8k",
        }
    }
}

/// One caption with an id unique across datasets (`coco:38`, `flickr8k:1000268201_693b08cb0e.jpg#0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Caption {
    pub id: String,
    pub text: String,
}

/// An image an annotation file names, with its captions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionedImage {
    pub key: String,
    pub file_name: String,
    pub captions: Vec<Caption>,
}

/// A whole annotation file.
#[derive(Debug, Clone)]
pub struct CaptionDataset {
    pub kind: DatasetKind,
    pub source: PathBuf,
    pub images: Vec<CaptionedImage>,
    /// Captions that name an image the file does not list (COCO), kept out of `images`.
    pub orphan_captions: usize,
}

impl CaptionDataset {
    pub fn caption_count(&self) -> usize {
        self.images.iter().map(|image| image.captions.len()).sum()
    }

    pub fn read(kind: DatasetKind, path: &Path) -> Result<CaptionDataset, DatasetError> {
        match kind {
            DatasetKind::Coco => read_coco(path),
            DatasetKind::Flickr8k => read_flickr8k(path),
        }
    }
}

/// Why an annotation file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("`{path}`, line {line}: {message}")]
    Format { path: PathBuf, line: usize, message: String },
    #[error("`{path}` names no image with a caption")]
    Empty { path: PathBuf },
}
