//! Image features: every photo an annotation file names, run once through EfficientNet-Lite, stored with
//! the image keys and captions so that the trainers never touch a JPEG.
//!
//! A features folder holds `features.safetensors` (`pooled`: `[images, 1280]` f32), `images.jsonl` (one
//! [`crate::captions::CaptionedImage`] per row of the table, in order), `captions.jsonl` (every caption of
//! the annotation file, also those of images not on disk: the vocabulary and caption bank use them) and
//! `manifest.json` (inputs and their hashes, what was missing or unreadable). With `--spatial`,
//! `spatial.safetensors` (`spatial`: `[images, h * w * 1280]` f16) holds the last feature map of each photo,
//! location-major: the captioner's annotation vectors.

mod extract;
mod set;

pub use extract::{ExtractError, ExtractReport, ExtractRequest, extract_features};
pub use set::{
    CAPTIONS_FILE, FEATURES_FILE, FeatureSet, FeaturesError, FeaturesInput, FeaturesManifest, IMAGES_FILE,
    SPATIAL_FILE, SkippedImage, SpatialInfo,
};
