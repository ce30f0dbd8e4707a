//! `storytool pipeline`: every stage, from raw books and photos to stories, in one command.
//!
//! Each stage has a fingerprint: a hash of its settings, the fingerprints of the stages it reads, and the
//! size and modification time of the raw files it reads. `<run_dir>/pipeline.json` records, per stage, the
//! fingerprint it was started with and the one it finished with. A stage whose output exists and whose
//! finished fingerprint matches is skipped; a training stage started with the current fingerprint but not
//! finished (stopped, Ctrl-C) resumes from its checkpoint; anything else runs afresh, replacing old output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::captions::{CaptionDataset, DatasetKind};
use crate::config::{Config, DecoderConfig, DecoderKind, ImageSet};
use crate::corpus::discover::Shelf;
use crate::corpus::{IngestRequest, ingest};
use crate::features::{ExtractRequest, extract_features};
use crate::progress::Progress;
use crate::retrieval::TrainedVse;
use crate::retrieval::bank::build_bank;
use crate::story::bias::{BiasRequest, compute_bias};
use crate::story::generate::{Generator, ModelPaths, Story, StoryInput, StoryOptions};
use crate::train::captioner::{CaptionerTrainRequest, train_captioner};
use crate::train::decoder::{DecoderTrainRequest, train_decoder};
use crate::train::encoder::{EncoderTrainRequest, train_encoder};
use crate::train::lm_decoder::{LmDecoderTrainRequest, train_lm_decoder};
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

/// Each trainer section's keys in the order they had before the schedule moved into `[section.train]`.
const FLAT_ORDER: [(&str, &[&str]); 4] = [
    (
        "encoder",
        &[
            "word_dim",
            "hidden_dim",
            "max_tokens",
            "batch_size",
            "learning_rate",
            "clip_norm",
            "per_step_context",
            "bidirectional",
            "sampled_softmax",
            "seed",
            "steps",
            "validate_every",
            "valid_batches",
            "checkpoint_every",
        ],
    ),
    (
        "vse",
        &[
            "word_dim",
            "embed_dim",
            "max_tokens",
            "vocab_size",
            "batch_size",
            "learning_rate",
            "clip_norm",
            "margin",
            "max_violation",
            "valid_percent",
            "test_percent",
            "seed",
            "steps",
            "validate_every",
            "checkpoint_every",
        ],
    ),
    (
        "captioner",
        &[
            "word_dim",
            "hidden_dim",
            "attention_dim",
            "dropout",
            "attention_penalty",
            "vocab_size",
            "min_word_count",
            "max_tokens",
            "batch_size",
            "learning_rate",
            "clip_norm",
            "valid_percent",
            "test_percent",
            "seed",
            "steps",
            "validate_every",
            "checkpoint_every",
            "beam",
            "max_words",
            "no_repeat_ngram",
        ],
    ),
    (
        "decoder",
        &[
            "passage_sentences",
            "max_tokens",
            "word_dim",
            "hidden_dim",
            "per_step_context",
            "word_dropout",
            "bag_of_words",
            "centre_context",
            "keywords",
            "genre_input",
            "genre_dropout",
            "max_passages",
            "batch_size",
            "learning_rate",
            "clip_norm",
            "sampled_softmax",
            "seed",
            "steps",
            "validate_every",
            "valid_batches",
            "checkpoint_every",
        ],
    ),
];

/// A trainer section's settings as the text a fingerprint hashes, in the flat layout and key order of
/// before `[section.train]` (keys added since follow in name order): a pipeline run recorded then stays up
/// to date instead of training every model again.
fn trainer_settings<T: Serialize>(section: &str, value: &T) -> String {
    // The serializer's own text of each value (an f32 `0.2` stays `0.2`), the `[train]` lines among the rest.
    let text = toml(value);
    let mut lines: Vec<(&str, &str)> = text.lines().filter_map(|line| line.split_once(" = ")).collect();
    let order = FLAT_ORDER.iter().find(|(name, _)| *name == section).map_or(&[][..], |(_, keys)| *keys);
    let mut flat = String::new();
    for key in order {
        if let Some(position) = lines.iter().position(|(name, _)| name == key) {
            let (name, value) = lines.remove(position);
            flat.push_str(&format!("{name} = {value}\n"));
        }
    }
    lines.sort();
    for (name, value) in lines {
        flat.push_str(&format!("{name} = {value}\n"));
    }
    flat
}

/// A GRU decoder's settings as `trainer_settings` hashed them before `kind` and `[decoder.lm]` existed.
fn gru_decoder_settings(decoder: &DecoderConfig) -> String {
    // Through the serializer's text, so that an f32 `0.2` stays `0.2`.
    let mut table: toml::Table = toml(decoder).parse().expect("settings parse back");
    table.remove("kind");
    table.remove("lm");
    trainer_settings("decoder", &table)
}

/// One row of the pipeline: what it is called, what it writes, its fingerprint (its settings, the
/// fingerprints of the stages it reads, the stamps of the raw files it reads), whether a stopped run of it
/// resumes from a checkpoint, and the work itself (given whether to resume).
struct Stage<'a> {
    name: String,
    output: PathBuf,
    fingerprint: String,
    resumable: bool,
    run: Box<dyn FnOnce(bool) -> Result<(), PipelineError> + 'a>,
}

impl<'a> Stage<'a> {
    fn new(
        name: impl Into<String>,
        output: &Path,
        fingerprint: String,
        resumable: bool,
        run: impl FnOnce(bool) -> Result<(), PipelineError> + 'a,
    ) -> Stage<'a> {
        Stage { name: name.into(), output: output.to_path_buf(), fingerprint, resumable, run: Box::new(run) }
    }
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

    /// Runs `stage` unless it is up to date (its output exists and it finished with this fingerprint).
    fn run(&mut self, stage: Stage<'_>) -> Result<(), PipelineError> {
        let Stage { name, output, fingerprint: print, resumable, run } = stage;
        let entry = self.record.stages.get(&name).cloned().unwrap_or_default();
        if output.exists() && entry.finished.as_deref() == Some(print.as_str()) {
            self.reporter.stage(&name, StageStatus::Skipped);
            return Ok(());
        }
        let resume =
            resumable && output.join("checkpoint").is_dir() && entry.started.as_deref() == Some(print.as_str());
        self.reporter.stage(&name, if resume { StageStatus::Resuming } else { StageStatus::Running });
        self.record.stages.insert(name.clone(), StageRecord { started: Some(print.clone()), finished: None });
        self.save()?;
        run(resume)?;
        self.record.stages.insert(name.clone(), StageRecord { started: Some(print.clone()), finished: Some(print) });
        self.save()?;
        self.reporter.stage(&name, StageStatus::Done);
        Ok(())
    }
}

/// Where each stage writes, under the run folder.
struct Outputs {
    corpus: PathBuf,
    encoder: PathBuf,
    decoder: PathBuf,
    bias: PathBuf,
    vse: PathBuf,
    bank: PathBuf,
    captioner: PathBuf,
}

impl Outputs {
    fn under(dir: &Path) -> Outputs {
        Outputs {
            corpus: dir.join("corpus"),
            encoder: dir.join("encoder"),
            decoder: dir.join("decoder"),
            bias: dir.join("bias"),
            vse: dir.join("vse"),
            bank: dir.join("caption-bank"),
            captioner: dir.join("captioner"),
        }
    }
}

/// What every stage's work shares.
struct Context<'a> {
    config: &'a Config,
    cnn: &'a Path,
    command: Vec<String>,
    cancel: &'a CancelFlag,
    progress: &'a dyn Progress,
    /// Where models compute: the encoder trains on all of them (data-parallel), every other stage on the first.
    devices: &'a [Device],
}

impl Context<'_> {
    /// A training run into `out`: resumed when the pipeline says so, else replacing what is there.
    fn run_options(&self, out: &Path, resume: bool) -> RunOptions {
        RunOptions {
            out: out.to_path_buf(),
            resume,
            force: !resume,
            command: self.command.clone(),
            cancel: self.cancel.clone(),
            devices: vec![self.device().clone()],
        }
    }

    /// The device of every stage but the encoder's training.
    fn device(&self) -> &Device {
        &self.devices[0]
    }
}

/// The pipeline's stages in order, each with its fingerprint: the table `run_pipeline` runs.
fn stages<'a>(context: &'a Context<'a>, out: &'a Outputs, dir: &Path) -> Vec<Stage<'a>> {
    let Context { config, cnn, progress, cancel, .. } = *context;
    let settings = &config.pipeline;
    let mut table = Vec::new();

    let genres = toml(&config.genres);
    // An empty path means none (TOML has no null): `catalog = ""` reads genre folders instead.
    let catalog = settings.catalog.clone().filter(|path| !path.as_os_str().is_empty());
    let books = format!("{}{}", file_stamp(&settings.books), catalog.as_deref().map(file_stamp).unwrap_or_default());
    let ingest_print = fingerprint(&["ingest", &toml(&config.corpus), &genres, &books]);
    table.push(Stage::new("ingest", &out.corpus, ingest_print.clone(), false, move |_| {
        let request = IngestRequest {
            shelves: vec![Shelf { books_dir: settings.books.clone(), catalogue: catalog }],
            out: out.corpus.clone(),
            force: true,
            config: config.clone(),
            command: context.command.clone(),
            cancel: cancel.clone(),
            vocabulary: None,
        };
        ingest(&request, progress).map(|_| ()).map_err(fail("ingest"))
    }));

    let encoder_print = fingerprint(&["train-encoder", &trainer_settings("encoder", &config.encoder), &ingest_print]);
    table.push(Stage::new("train-encoder", &out.encoder, encoder_print.clone(), true, move |resume| {
        let request = EncoderTrainRequest {
            corpus_dir: out.corpus.clone(),
            config: config.clone(),
            run: context.run_options(&out.encoder, resume).on(context.devices.to_vec()),
        };
        train_encoder(&request, progress).map(|_| ()).map_err(fail("train-encoder"))
    }));

    let lm_path = crate::story::lm_decoder::default_lm_path().unwrap_or_default();
    let decoder_print = match config.decoder.kind {
        // A GRU decoder hashes as it did before the language-model keys existed.
        DecoderKind::Gru => fingerprint(&["train-decoder", &gru_decoder_settings(&config.decoder), &encoder_print]),
        DecoderKind::Lm => {
            fingerprint(&["train-decoder", &toml(&config.decoder), &encoder_print, &file_stamp(&lm_path)])
        }
    };
    table.push(Stage::new("train-decoder", &out.decoder, decoder_print, true, move |resume| {
        match config.decoder.kind {
            DecoderKind::Gru => {
                let request = DecoderTrainRequest {
                    corpus_dir: out.corpus.clone(),
                    encoder_dir: out.encoder.clone(),
                    config: config.clone(),
                    run: context.run_options(&out.decoder, resume),
                };
                train_decoder(&request, progress).map(|_| ()).map_err(fail("train-decoder"))
            }
            DecoderKind::Lm => {
                let request = LmDecoderTrainRequest {
                    corpus_dir: out.corpus.clone(),
                    encoder_dir: out.encoder.clone(),
                    lm_path: lm_path.clone(),
                    config: config.clone(),
                    run: context.run_options(&out.decoder, resume),
                };
                train_lm_decoder(&request, progress).map(|_| ()).map_err(fail("train-decoder"))
            }
        }
    }));

    let sets: Vec<(DatasetKind, &ImageSet)> = settings
        .coco
        .iter()
        .map(|set| (DatasetKind::Coco, set))
        .chain(settings.flickr8k.iter().map(|set| (DatasetKind::Flickr8k, set)))
        .collect();
    let captions: Vec<(DatasetKind, PathBuf)> = sets.iter().map(|(kind, set)| (*kind, set.captions.clone())).collect();
    let caption_stamp: String = captions.iter().map(|(_, path)| file_stamp(path)).collect();
    let bias_print = fingerprint(&["compute-bias", &toml(&config.bias), &genres, &encoder_print, &caption_stamp]);
    let bias_captions = captions.clone();
    table.push(Stage::new("compute-bias", &out.bias, bias_print, false, move |_| {
        let request = BiasRequest {
            encoder_dir: out.encoder.clone(),
            corpus_dir: out.corpus.clone(),
            captions: bias_captions,
            out: out.bias.clone(),
            force: true,
            config: config.clone(),
            device: context.device().clone(),
            command: context.command.clone(),
        };
        compute_bias(&request, progress).map(|_| ()).map_err(fail("compute-bias"))
    }));

    // With the captioner, each photo's spatial map is kept too (what `train-captioner` attends over).
    let spatial = settings.captioner;
    let cnn_stamp = file_stamp(cnn);
    let mut feature_dirs = Vec::new();
    let mut feature_prints = Vec::new();
    for (index, (kind, set)) in sets.iter().copied().enumerate() {
        let name = format!("features-{}-{index}", kind.name());
        let features = dir.join(&name);
        let mut parts =
            vec!["extract-features".to_string(), file_stamp(&set.captions), file_stamp(&set.images), cnn_stamp.clone()];
        if spatial {
            parts.push("spatial".into());
        }
        let print = fingerprint(&parts.iter().map(String::as_str).collect::<Vec<_>>());
        let output = features.clone();
        table.push(Stage::new(name, &features, print.clone(), false, move |_| {
            let dataset = CaptionDataset::read(kind, &set.captions).map_err(fail("extract-features"))?;
            let request = ExtractRequest {
                dataset,
                images_dir: set.images.clone(),
                cnn_weights: cnn.to_path_buf(),
                out: output,
                force: true,
                batch_size: 16,
                spatial,
                image_size: None,
                device: context.device().clone(),
                command: context.command.clone(),
                cancel: cancel.clone(),
            };
            extract_features(&request, progress).map(|_| ()).map_err(fail("extract-features"))
        }));
        feature_dirs.push(features);
        feature_prints.push(print);
    }

    let word_vectors = settings.word_vectors.clone().filter(|path| !path.as_os_str().is_empty());
    let vectors_stamp = word_vectors.as_deref().map(file_stamp).unwrap_or_default();
    let vse_print =
        fingerprint(&["train-vse", &trainer_settings("vse", &config.vse), &feature_prints.join(","), &vectors_stamp]);
    let vse_features = feature_dirs.clone();
    table.push(Stage::new("train-vse", &out.vse, vse_print.clone(), true, move |resume| {
        let word_vectors = word_vectors.as_ref().map(|path| WordVectorsSource {
            path: path.clone(),
            format: VectorFormat::guess(path),
            words: settings.word_vectors_words.clone(),
        });
        let request = VseTrainRequest {
            features: vse_features,
            config: config.clone(),
            word_vectors,
            run: context.run_options(&out.vse, resume),
        };
        train_vse(&request, progress).map(|_| ()).map_err(fail("train-vse"))
    }));

    if settings.captioner {
        let captioner_print = fingerprint(&[
            "train-captioner",
            &trainer_settings("captioner", &config.captioner),
            &feature_prints.join(","),
        ]);
        table.push(Stage::new("train-captioner", &out.captioner, captioner_print, true, move |resume| {
            let request = CaptionerTrainRequest {
                features: feature_dirs,
                config: config.clone(),
                run: context.run_options(&out.captioner, resume),
            };
            train_captioner(&request, progress).map(|_| ()).map_err(fail("train-captioner"))
        }));
    }

    let bank_print = fingerprint(&["build-caption-bank", &vse_print, &encoder_print, &caption_stamp]);
    table.push(Stage::new("build-caption-bank", &out.bank, bank_print, false, move |_| {
        let trained = TrainedVse::load(&out.vse, context.device()).map_err(fail("build-caption-bank"))?;
        let sentence_encoder = crate::encoder::SentenceEncoder::load(&out.encoder, context.device())
            .map_err(fail("build-caption-bank"))?;
        build_bank(
            &trained,
            Some((&sentence_encoder, &out.encoder)),
            &captions,
            &out.bank,
            true,
            context.command.clone(),
            cancel,
            progress,
        )
        .map(|_| ())
        .map_err(fail("build-caption-bank"))
    }));
    table
}

/// Runs every stage that is not up to date, then writes stories about `config.pipeline.photos` (from
/// written captions when `pipeline.captioner` is set, else from the caption bank).
pub fn run_pipeline(
    config: &Config,
    cnn: &Path,
    command: Vec<String>,
    cancel: &CancelFlag,
    devices: &[Device],
    reporter: &dyn PipelineReporter,
) -> Result<Vec<PhotoStory>, PipelineError> {
    assert!(!devices.is_empty(), "the pipeline needs a device");
    let settings = &config.pipeline;
    let dir = settings.run_dir.clone();
    std::fs::create_dir_all(&dir).map_err(fail("pipeline"))?;
    let record = std::fs::read(dir.join(RECORD_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut runner = Runner { run_dir: dir.clone(), record, reporter };
    let out = Outputs::under(&dir);
    let context = Context { config, cnn, command, cancel, progress: reporter.progress(), devices };
    for stage in stages(&context, &out, &dir) {
        runner.run(stage)?;
    }

    reporter.stage("generate", StageStatus::Running);
    let paths = ModelPaths {
        encoder: out.encoder,
        decoder: out.decoder,
        bias: out.bias,
        vse: out.vse,
        bank: out.bank,
        cnn: cnn.to_path_buf(),
        captioner: settings.captioner.then_some(out.captioner),
        lm: crate::story::lm_decoder::default_lm_path(),
    };
    let generator = Generator::load(&paths, true, &devices[0]).map_err(fail("generate"))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EncoderConfig;

    #[test]
    fn trainer_settings_hash_as_they_did_before_the_train_table() {
        // `toml::to_string` of the sections before `[section.train]` (from `--print-config` of that build).
        let encoder = "word_dim = 128\nhidden_dim = 256\nmax_tokens = 30\nbatch_size = 64\nlearning_rate = 0.001\n\
            clip_norm = 5.0\nper_step_context = false\nbidirectional = false\nsampled_softmax = 1024\nseed = 42\n\
            steps = 3000\nvalidate_every = 250\nvalid_batches = 20\ncheckpoint_every = 250\n";
        assert_eq!(trainer_settings("encoder", &EncoderConfig::default()), encoder);
        let decoder = "passage_sentences = 3\nmax_tokens = 70\nword_dim = 128\nhidden_dim = 384\n\
            per_step_context = true\nword_dropout = 0.5\nbag_of_words = 3.0\ncentre_context = true\nkeywords = 6\n\
            genre_input = true\ngenre_dropout = 0.2\nmax_passages = 40000\nbatch_size = 32\nlearning_rate = 0.002\n\
            clip_norm = 5.0\nsampled_softmax = 1024\nseed = 42\nsteps = 1500\nvalidate_every = 250\n\
            valid_batches = 10\ncheckpoint_every = 250\n";
        assert_eq!(gru_decoder_settings(&DecoderConfig::default()), decoder);
    }
}
