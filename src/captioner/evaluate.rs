//! `storytool evaluate captioner`: corpus BLEU and CIDEr-D of the captions a captioner writes for held-out photos,
//! beside the retrieval baseline, the VSE's nearest caption for the same photo among the training photos'
//! captions (so neither model has seen the photo or its captions).

use serde::Serialize;

use super::bleu::{BleuCorpus, BleuScores, bleu_words};
use super::cider::cider_d;
use super::data::{CaptionerData, CaptionerImage};
use super::decode::{CaptionRules, beam_captions, caption_beam_settings, greedy_captions};
use super::trained::TrainedCaptioner;
use crate::captions::{Split, split_of};
use crate::features::{FeatureSet, FeaturesError};
use crate::progress::Progress;
use crate::retrieval::TrainedVse;

/// Photos decoded together by greedy decoding.
const GREEDY_BATCH: usize = 32;
/// Captions embedded by the VSE at a time.
const EMBED_BATCH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Features(#[from] FeaturesError),
    #[error("the {0:?} split has no photos")]
    NoPhotos(Split),
    #[error("{0}")]
    Incompatible(String),
}

/// Corpus scores of a set of captions.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CaptionScores {
    #[serde(flatten)]
    pub bleu: BleuScores,
    /// CIDEr-D, times 10 as COCO reports it (1.0 is "as good as an average reference").
    pub cider_d: f64,
}

/// The retrieval baseline's scores and what it searched.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalBaseline {
    pub scores: CaptionScores,
    /// Captions of training photos it chose from.
    pub pool: usize,
}

/// One photo's captions, for a look at what the scores mean.
#[derive(Debug, Clone, Serialize)]
pub struct PhotoCaptions {
    pub image: String,
    pub written: String,
    pub retrieved: Option<String>,
    pub reference: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaptionerEvaluation {
    pub split: Split,
    pub photos: usize,
    pub references: usize,
    pub beam: usize,
    pub captioner: CaptionScores,
    pub retrieval: Option<RetrievalBaseline>,
    pub samples: Vec<PhotoCaptions>,
}

/// Writes a caption for every photo of `split` and scores the captions against the photo's references.
/// With `vse`, also scores the baseline.
pub fn evaluate_captioner(
    captioner: &TrainedCaptioner,
    data: &CaptionerData,
    split: Split,
    beam: usize,
    vse: Option<&TrainedVse>,
    progress: &dyn Progress,
) -> Result<CaptionerEvaluation, EvaluateError> {
    let photos = data.split(split);
    if photos.is_empty() {
        return Err(EvaluateError::NoPhotos(split));
    }
    let rules = CaptionRules::of(&captioner.manifest.config);
    progress.set_total(photos.len() as u64);
    let device = captioner.device.clone();
    let mut written: Vec<String> = Vec::with_capacity(photos.len());
    if beam <= 1 {
        for chunk in photos.chunks(GREEDY_BATCH) {
            let words = greedy_captions(&captioner.model, data.annotation_batch(chunk, &device), &rules);
            written.extend(words.iter().map(|words| captioner.vocabulary.decode(words)));
            progress.advance(chunk.len() as u64);
        }
    } else {
        let settings = caption_beam_settings(beam, &rules);
        for photo in &photos {
            let best = beam_captions(&captioner.model, data.annotation_batch(&[photo], &device), &settings);
            written.push(best.first().map(|finished| captioner.vocabulary.decode(&finished.words)).unwrap_or_default());
            progress.advance(1);
        }
    }
    progress.finish();

    let references: Vec<Vec<Vec<String>>> =
        photos.iter().map(|photo| photo.texts.iter().map(|text| bleu_words(text)).collect()).collect();
    let score = |hypotheses: &[String]| {
        let hypotheses: Vec<Vec<String>> = hypotheses.iter().map(|text| bleu_words(text)).collect();
        let mut corpus = BleuCorpus::default();
        for (hypothesis, references) in hypotheses.iter().zip(&references) {
            corpus.add(hypothesis, references);
        }
        CaptionScores { bleu: corpus.scores(), cider_d: cider_d(&hypotheses, &references).0 }
    };
    let (retrieval, retrieved) = match vse {
        Some(vse) => {
            let (captions, pool) = retrieve(vse, captioner, data, &photos)?;
            (Some(RetrievalBaseline { scores: score(&captions), pool }), Some(captions))
        }
        None => (None, None),
    };
    let samples = photos
        .iter()
        .enumerate()
        .map(|(index, photo)| PhotoCaptions {
            image: photo.key.clone(),
            written: written[index].clone(),
            retrieved: retrieved.as_ref().map(|captions| captions[index].clone()),
            reference: photo.texts.first().cloned().unwrap_or_default(),
        })
        .collect();
    Ok(CaptionerEvaluation {
        split,
        photos: photos.len(),
        references: photos.iter().map(|photo| photo.texts.len()).sum(),
        beam,
        captioner: score(&written),
        retrieval,
        samples,
    })
}

/// The VSE's nearest training-photo caption for each photo, and how many captions it chose from.
fn retrieve(
    vse: &TrainedVse,
    captioner: &TrainedCaptioner,
    data: &CaptionerData,
    photos: &[&CaptionerImage],
) -> Result<(Vec<String>, usize), EvaluateError> {
    let (vse_config, config) = (&vse.manifest.config, &captioner.manifest.config);
    if (vse_config.valid_percent, vse_config.test_percent) != (config.valid_percent, config.test_percent) {
        return Err(EvaluateError::Incompatible(format!(
            "the VSE split photos {}% valid / {}% test and the captioner {}% / {}%: the baseline would be scored on photos the VSE trained on\n\nhint: train both with the same split settings",
            vse_config.valid_percent, vse_config.test_percent, config.valid_percent, config.test_percent
        )));
    }
    if vse.manifest.cnn.blake3 != data.cnn.blake3 || vse.manifest.image_size != data.image_size {
        return Err(EvaluateError::Incompatible(
            "the VSE was trained on features of another CNN or image size than these".into(),
        ));
    }
    let split = |key: &str| split_of(key, config.valid_percent, config.test_percent);
    let mut pool: Vec<String> = Vec::new();
    for input in &data.inputs {
        let captions = FeatureSet::captions_in(std::path::Path::new(&input.dir))?;
        pool.extend(
            captions.into_iter().filter(|line| split(&line.image) == Split::Train).map(|line| line.caption.text),
        );
    }
    if pool.is_empty() {
        return Err(EvaluateError::Incompatible("no training photo has a caption to retrieve".into()));
    }
    let dim = vse.embed_dim();
    let mut caption_vectors = Vec::with_capacity(pool.len() * dim);
    for chunk in pool.chunks(EMBED_BATCH) {
        caption_vectors.extend(vse.embed_texts(chunk));
    }
    let features: Vec<f32> = photos.iter().flat_map(|photo| data.pooled_row(photo)).copied().collect();
    let image_vectors = vse.embed_features(&features);
    let captions = image_vectors
        .chunks(dim)
        .map(|image| {
            let best = caption_vectors
                .chunks(dim)
                .map(|caption| caption.iter().zip(image).map(|(a, b)| a * b).sum::<f32>())
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(0, |(index, _)| index);
            pool[best].clone()
        })
        .collect();
    Ok((captions, pool.len()))
}
