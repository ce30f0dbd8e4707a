//! `storytool train-encoder`: the skip-thought training loop.
//!
//! Adam with gradient clipping over length-bucketed batches of (previous, current, next) triples from the
//! corpus's training books; a validation loss on held-out books every `validate_every` steps; metrics
//! appended to `metrics.jsonl`; a checkpoint (model and optimizer as burnpack files, plus the step and
//! data position) every `checkpoint_every` steps, on Ctrl-C and at the end, each written to a staging folder
//! and renamed over the last one. `--resume` reloads it and recomputes the batch plan, so a resumed run
//! sees the same batches in the same order as an uninterrupted one. A NaN or infinite loss stops training
//! before the bad step is applied, keeping the last good checkpoint.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::batches::plan_epoch;
use super::data_parallel::{Share, share_range};
use super::run::{LossWindow, Position, RunState, TokenLossLog, TrainingTask, export_weights, store_error};
use super::trainer::{RunEnd, RunOptions, Trainer, train};
use super::triples::{Triple, sentence_triples};
use crate::config::{Config, EncoderConfig, TrainSchedule, section_with_lifted_schedule};
use crate::corpus::Corpus;
use crate::corpus::streams::SplitStreams;
use crate::model::adaptive_softmax::check_cutoffs;
use crate::model::batch::PaddedBatch;
use crate::model::skip_thought::{SkipThought, SkipThoughtConfig, TripleTensors};
use crate::progress::Progress;
use crate::util::atomic::write_json;

pub use super::run::{CHECKPOINT_DIR, METRICS_FILE, MetricsLine, TrainError};
use crate::encoder::{ENCODER_FILE, ENCODER_FORMAT, EncoderManifest, MANIFEST_FILE, TOKENIZER_FILE};

/// What to train and where.
#[derive(Debug, Clone)]
pub struct EncoderTrainRequest {
    pub corpus_dir: PathBuf,
    pub config: Config,
    pub run: RunOptions,
}

/// The training position saved with each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    #[serde(flatten)]
    position: Position,
    /// Settings that must not change across a resume.
    #[serde(deserialize_with = "section_with_lifted_schedule")]
    encoder: EncoderConfig,
    vocabulary_hash: String,
}

impl RunState for TrainState {
    fn position(&mut self) -> &mut Position {
        &mut self.position
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct EncoderTrainReport {
    pub out: PathBuf,
    pub steps: u64,
    pub resumed_from: Option<u64>,
    pub train_loss: Option<f32>,
    pub valid_loss: Option<f32>,
    pub train_triples: usize,
    pub valid_triples: usize,
}

/// Examples of one split, with the lengths their batches are bucketed by.
struct TripleSet {
    vocab_size: usize,
    triples: Vec<Triple>,
    lengths: Vec<usize>,
}

impl TripleSet {
    fn new(split: &SplitStreams, vocab_size: usize, max_tokens: usize) -> TripleSet {
        let triples = sentence_triples(split);
        let lengths = triples.iter().map(|triple| split.sentence(triple.current).len().min(max_tokens)).collect();
        TripleSet { vocab_size, triples, lengths }
    }

    /// The tensors of one batch of `split`'s triples and its number of tokens. In training (`step` given)
    /// with `sampled_softmax` set, the batch scores a sample of words drawn from a generator seeded by the
    /// step, so that a resumed run draws the same words.
    fn tensors(
        &self,
        split: &SplitStreams,
        batch: &[usize],
        config: &EncoderConfig,
        device: &Device,
        step: impl Into<Option<u64>>,
    ) -> (TripleTensors, usize) {
        let pad = |pick: fn(&Triple) -> usize| {
            PaddedBatch::new(batch.iter().map(|&index| split.sentence(pick(&self.triples[index]))), config.max_tokens)
        };
        let (current, previous, next) = (pad(|t| t.current), pad(|t| t.previous), pad(|t| t.next));
        let tokens = [&current, &previous, &next].iter().map(|padded| padded.lengths.iter().sum::<usize>()).sum();
        let mut tensors = TripleTensors::new(&current, &previous, &next, config.hidden_dim, device);
        if let Some(step) = step.into()
            && config.sampled_softmax > 0
        {
            let mut rng = ChaCha8Rng::seed_from_u64(config.train.seed ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03));
            tensors = tensors.with_sampled_softmax(
                &previous,
                &next,
                self.vocab_size,
                config.sampled_softmax,
                &mut rng,
                device,
            );
        }
        (tensors, tokens)
    }
}

/// Trains (or resumes training) a skip-thought encoder on `request.corpus_dir`.
pub fn train_encoder(request: &EncoderTrainRequest, progress: &dyn Progress) -> Result<EncoderTrainReport, TrainError> {
    train(request, progress)
}

/// The opened corpus and its triples.
pub struct EncoderData {
    corpus: Corpus,
    train: TripleSet,
    valid: TripleSet,
}

impl Trainer for EncoderTrainRequest {
    type Data = EncoderData;
    type Model = SkipThought;
    type State = TrainState;
    type Task<'a> = EncoderTask<'a>;
    type Report = EncoderTrainReport;
    const DATA_PARALLEL: bool = true;

    fn options(&self) -> &RunOptions {
        &self.run
    }

    fn schedule(&self) -> &TrainSchedule {
        &self.config.encoder.train
    }

    fn inputs(&self) -> Vec<&Path> {
        vec![&self.corpus_dir]
    }

    fn open(&self, _progress: &dyn Progress) -> Result<EncoderData, TrainError> {
        let config = &self.config.encoder;
        let corpus = Corpus::open(&self.corpus_dir)?;
        let train = TripleSet::new(&corpus.train, corpus.vocabulary.len(), config.max_tokens);
        let valid = TripleSet::new(&corpus.valid, corpus.vocabulary.len(), config.max_tokens);
        if train.triples.is_empty() {
            return Err(TrainError::NoExamples(
                "the train split of the corpus has no book with three or more sentences to make triples from".into(),
            ));
        }
        Ok(EncoderData { corpus, train, valid })
    }

    fn init(&self, data: &EncoderData, device: &Device) -> Result<(SkipThought, TrainState), TrainError> {
        let config = &self.config.encoder;
        let vocab_size = data.corpus.vocabulary.len();
        if !config.adaptive_softmax.is_empty() {
            check_cutoffs(&config.adaptive_softmax, vocab_size).map_err(|error| {
                TrainError::Input(format!("encoder.adaptive_softmax: {error} (the corpus's vocabulary size)"))
            })?;
        }
        let model = SkipThoughtConfig::new(vocab_size, config.word_dim, config.hidden_dim)
            .with_per_step_context(config.per_step_context)
            .with_bidirectional(config.bidirectional)
            .with_adaptive_cutoffs(config.adaptive_softmax.clone())
            .init(device);
        let state = TrainState {
            position: Position::default(),
            encoder: config.clone(),
            vocabulary_hash: data.corpus.manifest.vocabulary.hash.clone(),
        };
        Ok((model, state))
    }

    fn unchanged(saved: &TrainState, now: &TrainState) -> Vec<(String, bool)> {
        let mut checks = vec![("the corpus vocabulary".to_string(), saved.vocabulary_hash == now.vocabulary_hash)];
        checks.extend(saved.encoder.unchanged(&now.encoder));
        checks
    }

    fn task<'a>(&'a self, data: &'a EncoderData, device: &Device) -> EncoderTask<'a> {
        EncoderTask {
            data,
            config: &self.config.encoder,
            device: device.clone(),
            plan: Vec::new(),
            log: TokenLossLog::resume(&self.run.out),
        }
    }

    fn export(
        &self,
        data: &EncoderData,
        model: &SkipThought,
        _state: &TrainState,
        task: &EncoderTask<'_>,
        end: RunEnd,
    ) -> Result<EncoderTrainReport, TrainError> {
        let (train_loss, valid_loss) = (task.log.train_loss, task.log.valid_loss);
        export_encoder(self, &data.corpus, model, end.steps, train_loss, valid_loss)?;
        Ok(EncoderTrainReport {
            out: self.run.out.clone(),
            steps: end.steps,
            resumed_from: end.resumed_from,
            train_loss,
            valid_loss,
            train_triples: data.train.triples.len(),
            valid_triples: data.valid.triples.len(),
        })
    }
}

/// The skip-thought loss for the shared loop.
pub struct EncoderTask<'a> {
    data: &'a EncoderData,
    config: &'a EncoderConfig,
    device: Device,
    plan: Vec<Vec<usize>>,
    log: TokenLossLog,
}

impl TrainingTask for EncoderTask<'_> {
    type Model = SkipThought;

    fn start_epoch(&mut self, epoch: u64) -> usize {
        self.plan = plan_epoch(&self.data.train.lengths, self.config.train.batch_size, self.config.train.seed, epoch);
        self.plan.len()
    }

    fn loss(&self, model: &SkipThought, index: usize, step: u64) -> (Tensor<1>, usize) {
        let split = &self.data.corpus.train;
        let (batch, tokens) = self.data.train.tensors(split, &self.plan[index], self.config, &self.device, step);
        (model.loss(&batch), tokens)
    }

    /// A contiguous share of the batch's triples. With a sampled softmax each share draws its own
    /// candidate words (from the same seed), so a split batch scores other negatives than a whole one.
    fn share(
        &self,
        index: usize,
        step: u64,
        part: usize,
        parts: usize,
        device: &Device,
    ) -> Option<Share<'_, SkipThought>> {
        let batch = &self.plan[index];
        let rows = &batch[share_range(batch.len(), part, parts)];
        if rows.is_empty() {
            return None;
        }
        let split = &self.data.corpus.train;
        let (tensors, tokens) = self.data.train.tensors(split, rows, self.config, device, step);
        Some(Share {
            weight: tensors.target_tokens as f32,
            items: tokens,
            loss_sum: Box::new(move |model: &SkipThought| model.loss_sum(&tensors)),
        })
    }

    fn log(
        &mut self,
        model: &SkipThought,
        step: u64,
        window: &LossWindow,
        validate: bool,
        elapsed_seconds: f32,
    ) -> (String, String) {
        let valid_loss = if validate {
            validation_loss(model, &self.data.corpus.valid, &self.data.valid, self.config)
        } else {
            None
        };
        self.log.line(step, window, valid_loss, elapsed_seconds)
    }

    fn validation_score(&self) -> Option<f32> {
        self.log.valid_loss
    }
}

/// Mean loss over the first `valid_batches` batches of the held-out triples (the same batches every time).
fn validation_loss(
    model: &SkipThought,
    split: &SplitStreams,
    valid: &TripleSet,
    config: &EncoderConfig,
) -> Option<f32> {
    if valid.triples.is_empty() {
        return None;
    }
    let inference = model.valid();
    let device = crate::device::of_module(&inference);
    let plan = plan_epoch(&valid.lengths, config.train.batch_size, config.train.seed, 0);
    let losses: Vec<f32> = plan
        .iter()
        .take(config.valid_batches)
        .map(|batch| inference.loss(&valid.tensors(split, batch, config, &device, None).0).into_scalar())
        .collect();
    Some(losses.iter().sum::<f32>() / losses.len() as f32)
}

/// Writes the encoder half (embedding and encoder GRU) as safetensors, the vocabulary, and the manifest.
fn export_encoder(
    request: &EncoderTrainRequest,
    corpus: &Corpus,
    model: &SkipThought,
    steps: u64,
    train_loss: Option<f32>,
    valid_loss: Option<f32>,
) -> Result<(), TrainError> {
    export_weights(
        model,
        &request.run.out.join(ENCODER_FILE),
        Some(r"^(embedding|encoder|encoder_backward)\."),
        false,
    )?;
    corpus
        .vocabulary
        .save(&request.run.out.join(TOKENIZER_FILE))
        .map_err(|error| store_error(&request.run.out, error))?;
    let config = &request.config.encoder;
    let manifest = EncoderManifest {
        format: ENCODER_FORMAT.into(),
        created_by: crate::corpus::manifest::CreatedBy::now(request.run.command.clone()),
        corpus: corpus.dir.display().to_string(),
        vocabulary_size: corpus.vocabulary.len(),
        vocabulary_hash: corpus.manifest.vocabulary.hash.clone(),
        word_dim: config.word_dim,
        hidden_dim: config.hidden_dim,
        max_tokens: config.max_tokens,
        steps,
        final_train_loss: train_loss,
        final_valid_loss: valid_loss,
        config: config.clone(),
    };
    write_json(&request.run.out.join(MANIFEST_FILE), &manifest)?;
    Ok(())
}
