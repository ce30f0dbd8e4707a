//! `storytool extract-features`: decode, preprocess and run every named photo through the CNN.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::set::{
    CaptionLine, FORMAT, FeaturesManifest, MANIFEST_FILE, SPATIAL_FILE, SPATIAL_TABLE, SkippedImage, SpatialInfo,
};
use super::{CAPTIONS_FILE, FEATURES_FILE, FeaturesError, IMAGES_FILE};
use crate::captions::{CaptionDataset, CaptionedImage};
use crate::corpus::discover::stays_inside;
use crate::corpus::manifest::{CreatedBy, InputFile};
use crate::progress::Progress;
use crate::util::PathError;
use crate::util::atomic::{StagingDir, StagingError, write_file, write_json};
use crate::util::cancel::{CancelFlag, Interrupted};
use crate::util::tensor_file::{Precision, Table, write_tables};
use crate::util::values::f32_values;
use crate::vision::efficientnet::FEATURE_DIM;
use crate::vision::{EfficientNet, ImportError, load_image, preprocess};

#[derive(Debug, Clone)]
pub struct ExtractRequest {
    pub dataset: CaptionDataset,
    pub images_dir: PathBuf,
    pub cnn_weights: PathBuf,
    pub out: PathBuf,
    pub force: bool,
    pub batch_size: usize,
    /// Also store the last spatial feature map (Show, Attend and Tell's annotation vectors).
    pub spatial: bool,
    /// Side of the square input, instead of the CNN's own (a multiple of 32: 448 gives a 14x14 map on Lite0).
    pub image_size: Option<u32>,
    /// Where the CNN runs.
    pub device: Device,
    pub command: Vec<String>,
    pub cancel: CancelFlag,
}

#[derive(Debug, Clone)]
pub struct ExtractReport {
    pub manifest: FeaturesManifest,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Features(#[from] FeaturesError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error("none of the {named} images that `{annotations}` names could be read from `{images}`")]
    NoImages { named: usize, annotations: PathBuf, images: PathBuf },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    #[error("an image size of {0} px is not a positive multiple of 32 (the CNN halves it five times)")]
    ImageSize(u32),
}

/// Extracts features for every image of `request.dataset` found in `request.images_dir`.
pub fn extract_features(request: &ExtractRequest, progress: &dyn Progress) -> Result<ExtractReport, ExtractError> {
    let started = Instant::now();
    let staging = StagingDir::new(&request.out, request.force)?;
    let device = request.device.clone();
    let model = EfficientNet::from_pytorch(&request.cnn_weights, &device)?;
    let cnn = InputFile::of(&request.cnn_weights)?;
    let annotations = InputFile::of(&request.dataset.source)?;
    let size = match request.image_size {
        Some(size) if size == 0 || size % 32 != 0 => return Err(ExtractError::ImageSize(size)),
        Some(size) => size,
        None => model.image_size,
    };

    let mut missing = Vec::new();
    let mut present: Vec<&CaptionedImage> = Vec::new();
    for image in &request.dataset.images {
        if !stays_inside(&image.file_name) {
            missing.push(SkippedImage {
                file_name: image.file_name.clone(),
                reason: "names a path outside the images folder".into(),
            });
        } else if request.images_dir.join(&image.file_name).is_file() {
            present.push(image);
        } else {
            missing.push(SkippedImage { file_name: image.file_name.clone(), reason: "not on disk".into() });
        }
    }
    progress.set_total(present.len() as u64);
    let mut unreadable = Vec::new();
    let mut kept: Vec<CaptionedImage> = Vec::new();
    let mut pooled: Vec<f32> = Vec::new();
    let mut spatial: Vec<f32> = Vec::new();
    let mut grid = [0usize; 2];
    for batch in present.chunks(request.batch_size.max(1)) {
        request.cancel.check()?;
        let decoded: Vec<Result<Vec<f32>, String>> = batch
            .par_iter()
            .map(|image| {
                load_image(&request.images_dir.join(&image.file_name))
                    .map(|picture| preprocess(&picture, size))
                    .map_err(|error| error.to_string())
            })
            .collect();
        let mut pixels = Vec::new();
        let mut count = 0;
        for (image, result) in batch.iter().zip(decoded) {
            match result {
                Ok(values) => {
                    pixels.extend(values);
                    kept.push((*image).clone());
                    count += 1;
                }
                Err(reason) => unreadable.push(SkippedImage { file_name: image.file_name.clone(), reason }),
            }
        }
        if count > 0 {
            let side = size as usize;
            let input = Tensor::<4>::from_data(TensorData::new(pixels, [count, 3, side, side]), &device);
            let output = model.forward(input);
            pooled.extend(f32_values(output.pooled));
            if request.spatial {
                let [_, _, height, width] = output.spatial.dims();
                grid = [height, width];
                spatial.extend(annotation_rows(output.spatial));
            }
        }
        progress.advance(batch.len() as u64);
    }
    progress.finish();
    if kept.is_empty() {
        return Err(ExtractError::NoImages {
            named: request.dataset.images.len(),
            annotations: request.dataset.source.clone(),
            images: request.images_dir.clone(),
        });
    }

    let dir = staging.path();
    write_tables(&dir.join(FEATURES_FILE), &[&Table::new("pooled", kept.len(), FEATURE_DIM, pooled)], Precision::F32)?;
    let spatial_info = request.spatial.then(|| SpatialInfo { grid, dim: FEATURE_DIM, precision: "f16".into() });
    if let Some(info) = &spatial_info {
        let table = Table::new(SPATIAL_TABLE, kept.len(), info.locations() * FEATURE_DIM, spatial);
        write_tables(&dir.join(SPATIAL_FILE), &[&table], Precision::F16)?;
    }
    write_file(&dir.join(IMAGES_FILE), &jsonl(&kept))?;
    let captions: Vec<CaptionLine> = request
        .dataset
        .images
        .iter()
        .flat_map(|image| {
            image.captions.iter().map(|caption| CaptionLine { image: image.key.clone(), caption: caption.clone() })
        })
        .collect();
    write_file(&dir.join(CAPTIONS_FILE), &jsonl(&captions))?;
    let manifest = FeaturesManifest {
        format: FORMAT.into(),
        created_by: CreatedBy::now(request.command.clone()),
        dataset: request.dataset.kind,
        annotations,
        images_dir: request.images_dir.display().to_string(),
        cnn,
        image_size: size,
        feature_dim: FEATURE_DIM,
        spatial: spatial_info,
        images_named: request.dataset.images.len(),
        images_extracted: kept.len(),
        captions: captions.len(),
        missing,
        unreadable,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json(&dir.join(MANIFEST_FILE), &manifest)?;
    staging.commit()?;
    Ok(ExtractReport { manifest })
}

/// A CNN spatial map `[batch, channels, h, w]` as one row per image of `h * w` annotation vectors of
/// `channels` values each (location-major: row-major over the grid, channels contiguous).
fn annotation_rows(map: Tensor<4>) -> Vec<f32> {
    let [batch, channels, height, width] = map.dims();
    map.permute([0, 2, 3, 1])
        .reshape([batch, height * width * channels])
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 features")
}

fn jsonl<T: serde::Serialize>(rows: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        serde_json::to_writer(&mut out, row).expect("rows serialize");
        out.write_all(b"\n").expect("write to memory");
    }
    out
}
