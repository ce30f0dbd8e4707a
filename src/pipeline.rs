//! `storytool pipeline`: every stage, from raw books and photos to stories, in one command.
//!
//! Each stage has a fingerprint: a hash of its settings, the fingerprints of the stages it reads, and the
//! size and modification time of the raw files it reads. `<run_dir>/pipeline.json` records, per stage, the
//! fingerprint it was started with and the one it finished with. A stage whose output exists and whose
//! finished fingerprint matches is skipped; a training stage started with the current fingerprint but not
//! finished (stopped, Ctrl-C) resumes from its checkpoint; anything else runs afresh, replacing old output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::captions::{CaptionDataset, DatasetKind};
use crate::config::{Config, ImageSet};
use crate::corpus::{IngestRequest, ingest};
use crate::features::{ExtractRequest, extract_features};
use crate::progress::Progress;
use crate::retrieval::TrainedVse;
use crate::retrieval::bank::build_bank;
use crate::story::bias::{BiasRequest, compute_bias};
use crate::story::generate::{Generator, ModelPaths, Story, StoryInput, StoryOptions};
use crate::train::decoder::{DecoderTrainRequest, train_decoder};
use crate::train::encoder::{EncoderTrainRequest, train_encoder};
use crate::train::trainer::RunOptions;
use crate::train::vse::{VseTrainRequest, WordVectorsSource, train_vse};
use crate::util::atomic::write_json;
use crate::util::cancel::CancelFlag;
use crate::vectors::readers::VectorFormat;
use crate::vision::load_image;

const RECORD_FILE: &str = "pipeline.json";

/// What happened to a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageStatus {
    Running,
    Resuming,
    Skipped,
    Done,
}

/// The pipeline's hook for telling the user what it does; the CLI prints.
pub trait PipelineReporter: Sync {
    fn stage(&self, name: &str, status: StageStatus);
    /// A progress hook for the stage now running.
    fn progress(&self) -> &dyn Progress;
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct StageRecord {
    started: Option<String>,
    finished: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    stages: BTreeMap<String, StageRecord>,
}

/// A story written at the end of the pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PhotoStory {
    pub photo: String,
    #[serde(flatten)]
    pub story: Story,
}

#[derive(Debug, thiserror::Error)]
#[error("stage `{stage}` failed")]
pub struct PipelineError {
    pub stage: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn fail<E: std::error::Error + Send + Sync + 'static>(stage: &str) -> impl FnOnce(E) -> PipelineError + '_ {
    move |error| PipelineError { stage: stage.to_string(), source: Box::new(error) }
}

/// Size and modification time of every file under `path` (a file or a folder), in path order: cheap
/// enough for every run, and it changes when a file is edited, added or removed.
fn file_stamp(path: &Path) -> String {
    let mut entries: Vec<String> = walkdir::WalkDir::new(path)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| {
            let meta = entry.metadata().ok();
            let modified = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            format!("{}:{}:{:?}", entry.path().display(), meta.map_or(0, |m| m.len()), modified)
        })
        .collect();
    if entries.is_empty() {
        entries.push(format!("{}:missing", path.display()));
    }
    entries.join("\n")
}

fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    hasher.finalize().to_hex()[..16].to_string()
}

fn toml<T: Serialize>(value: &T) -> String {
    toml::to_string(value).expect("settings serialize")
}

struct Runner<'a> {
    run_dir: PathBuf,
    record: Record,
    reporter: &'a dyn PipelineReporter,
}

impl Runner<'_> {
    fn save(&self) -> Result<(), PipelineError> {
        write_json(&self.run_dir.join(RECORD_FILE), &self.record).map_err(fail("pipeline"))
    }

    /// Runs `work(resume)` unless the stage is up to date. `output` must exist for a skip.
    fn stage(
        &mut self,
        name: &str,
        print: &str,
        output: &Path,
        resumable: bool,
        work: impl FnOnce(bool) -> Result<(), PipelineError>,
    ) -> Result<(), PipelineError> {
        let entry = self.record.stages.get(name).cloned().unwrap_or_default();
        if output.exists() && entry.finished.as_deref() == Some(print) {
            self.reporter.stage(name, StageStatus::Skipped);
            return Ok(());
        }
        let resume = resumable && output.join("checkpoint").is_dir() && entry.started.as_deref() == Some(print);
        self.reporter.stage(name, if resume { StageStatus::Resuming } else { StageStatus::Running });
        self.record.stages.insert(name.to_string(), StageRecord { started: Some(print.to_string()), finished: None });
        self.save()?;
        work(resume)?;
        self.record.stages.insert(
            name.to_string(),
            StageRecord { started: Some(print.to_string()), finished: Some(print.to_string()) },
        );
        self.save()?;
        self.reporter.stage(name, StageStatus::Done);
        Ok(())
    }
}

/// Runs every stage that is not up to date, then writes stories about `config.pipeline.photos`.
pub fn run_pipeline(
    config: &Config,
    cnn: &Path,
    command: Vec<String>,
    cancel: &CancelFlag,
    reporter: &dyn PipelineReporter,
) -> Result<Vec<PhotoStory>, PipelineError> {
    let settings = &config.pipeline;
    let dir = settings.run_dir.clone();
    std::fs::create_dir_all(&dir).map_err(fail("pipeline"))?;
    let record = std::fs::read(dir.join(RECORD_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut runner = Runner { run_dir: dir.clone(), record, reporter };
    let progress = reporter.progress();
    let (corpus, encoder, decoder, bias, vse, bank) = (
        dir.join("corpus"),
        dir.join("encoder"),
        dir.join("decoder"),
        dir.join("bias"),
        dir.join("vse"),
        dir.join("caption-bank"),
    );

    let genres = toml(&config.genres);
    // An empty path means none (TOML has no null): `catalog = ""` reads genre folders instead.
    let catalog = settings.catalog.clone().filter(|path| !path.as_os_str().is_empty());
    let books = format!("{}{}", file_stamp(&settings.books), catalog.as_deref().map(file_stamp).unwrap_or_default());
    let ingest_print = fingerprint(&["ingest", &toml(&config.corpus), &genres, &books]);
    runner.stage("ingest", &ingest_print, &corpus, false, |_| {
        let request = IngestRequest {
            books_dir: settings.books.clone(),
            catalogue: catalog.clone(),
            out: corpus.clone(),
            force: true,
            config: config.clone(),
            command: command.clone(),
            cancel: cancel.clone(),
            vocabulary: None,
        };
        ingest(&request, progress).map(|_| ()).map_err(fail("ingest"))
    })?;

    let encoder_print = fingerprint(&["train-encoder", &toml(&config.encoder), &ingest_print]);
    runner.stage("train-encoder", &encoder_print, &encoder, true, |resume| {
        let request = EncoderTrainRequest {
            corpus_dir: corpus.clone(),
            config: config.clone(),
            run: RunOptions {
                out: encoder.clone(),
                resume,
                force: !resume,
                command: command.clone(),
                cancel: cancel.clone(),
            },
        };
        train_encoder(&request, progress).map(|_| ()).map_err(fail("train-encoder"))
    })?;

    let decoder_print = fingerprint(&["train-decoder", &toml(&config.decoder), &encoder_print]);
    runner.stage("train-decoder", &decoder_print, &decoder, true, |resume| {
        let request = DecoderTrainRequest {
            corpus_dir: corpus.clone(),
            encoder_dir: encoder.clone(),
            config: config.clone(),
            run: RunOptions {
                out: decoder.clone(),
                resume,
                force: !resume,
                command: command.clone(),
                cancel: cancel.clone(),
            },
        };
        train_decoder(&request, progress).map(|_| ()).map_err(fail("train-decoder"))
    })?;

    let sets: Vec<(DatasetKind, &ImageSet)> = settings
        .coco
        .iter()
        .map(|set| (DatasetKind::Coco, set))
        .chain(settings.flickr8k.iter().map(|set| (DatasetKind::Flickr8k, set)))
        .collect();
    let captions: Vec<(DatasetKind, PathBuf)> = sets.iter().map(|(kind, set)| (*kind, set.captions.clone())).collect();
    let caption_stamp: String = captions.iter().map(|(_, path)| file_stamp(path)).collect();
    let bias_print = fingerprint(&["compute-bias", &toml(&config.bias), &genres, &encoder_print, &caption_stamp]);
    runner.stage("compute-bias", &bias_print, &bias, false, |_| {
        let request = BiasRequest {
            encoder_dir: encoder.clone(),
            corpus_dir: corpus.clone(),
            captions: captions.clone(),
            out: bias.clone(),
            force: true,
            config: config.clone(),
            command: command.clone(),
        };
        compute_bias(&request, progress).map(|_| ()).map_err(fail("compute-bias"))
    })?;

    let cnn_stamp = file_stamp(cnn);
    let mut feature_dirs = Vec::new();
    let mut feature_prints = Vec::new();
    for (index, (kind, set)) in sets.iter().enumerate() {
        let name = format!("features-{}-{index}", kind.name());
        let out = dir.join(&name);
        let print =
            fingerprint(&["extract-features", &file_stamp(&set.captions), &file_stamp(&set.images), &cnn_stamp]);
        runner.stage(&name, &print, &out, false, |_| {
            let dataset = CaptionDataset::read(*kind, &set.captions).map_err(fail("extract-features"))?;
            let request = ExtractRequest {
                dataset,
                images_dir: set.images.clone(),
                cnn_weights: cnn.to_path_buf(),
                out: out.clone(),
                force: true,
                batch_size: 16,
                spatial: false,
                image_size: None,
                command: command.clone(),
                cancel: cancel.clone(),
            };
            extract_features(&request, progress).map(|_| ()).map_err(fail("extract-features"))
        })?;
        feature_dirs.push(out);
        feature_prints.push(print);
    }

    let word_vectors = settings.word_vectors.clone().filter(|path| !path.as_os_str().is_empty());
    let vectors_stamp = word_vectors.as_deref().map(file_stamp).unwrap_or_default();
    let vse_print = fingerprint(&["train-vse", &toml(&config.vse), &feature_prints.join(","), &vectors_stamp]);
    runner.stage("train-vse", &vse_print, &vse, true, |resume| {
        let word_vectors = word_vectors.as_ref().map(|path| WordVectorsSource {
            path: path.clone(),
            format: VectorFormat::guess(path),
            words: settings.word_vectors_words.clone(),
        });
        let request = VseTrainRequest {
            features: feature_dirs.clone(),
            config: config.clone(),
            word_vectors,
            run: RunOptions {
                out: vse.clone(),
                resume,
                force: !resume,
                command: command.clone(),
                cancel: cancel.clone(),
            },
        };
        train_vse(&request, progress).map(|_| ()).map_err(fail("train-vse"))
    })?;

    let bank_print = fingerprint(&["build-caption-bank", &vse_print, &encoder_print, &caption_stamp]);
    runner.stage("build-caption-bank", &bank_print, &bank, false, |_| {
        let trained = TrainedVse::load(&vse).map_err(fail("build-caption-bank"))?;
        let sentence_encoder = crate::encoder::SentenceEncoder::load(&encoder).map_err(fail("build-caption-bank"))?;
        build_bank(
            &trained,
            Some((&sentence_encoder, &encoder)),
            &captions,
            &bank,
            true,
            command.clone(),
            cancel,
            progress,
        )
        .map(|_| ())
        .map_err(fail("build-caption-bank"))
    })?;

    reporter.stage("generate", StageStatus::Running);
    let paths = ModelPaths { encoder, decoder, bias, vse, bank, cnn: cnn.to_path_buf(), captioner: None };
    let generator = Generator::load(&paths, true).map_err(fail("generate"))?;
    let mut stories = Vec::new();
    for photo in &settings.photos {
        let image = load_image(photo).map_err(fail("generate"))?;
        for genre in &settings.story_genres {
            let story = generator
                .generate(&StoryInput::Image(image.clone()), &StoryOptions::new(genre, &config.generate))
                .map_err(fail("generate"))?;
            stories.push(PhotoStory { photo: photo.display().to_string(), story });
        }
    }
    write_json(&dir.join("stories.json"), &stories).map_err(fail("generate"))?;
    reporter.stage("generate", StageStatus::Done);
    Ok(stories)
}
