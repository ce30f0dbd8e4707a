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

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::batches::plan_epoch;
use super::run::{
    LossWindow, Position, RunState, Schedule, TokenLossLog, TrainingTask, export_weights, require_unchanged, resume,
    store_error, train_steps,
};
use super::run_dir::RunDir;
use super::triples::{Triple, sentence_triples};
use crate::config::{Config, EncoderConfig};
use crate::corpus::Corpus;
use crate::corpus::streams::SplitStreams;
use crate::model::batch::PaddedBatch;
use crate::model::skip_thought::{SkipThought, SkipThoughtConfig, TripleTensors};
use crate::progress::Progress;
use crate::util::atomic::write_json;
use crate::util::cancel::CancelFlag;

pub use super::run::{CHECKPOINT_DIR, METRICS_FILE, MetricsLine, TrainError};
use crate::encoder::{ENCODER_FILE, ENCODER_FORMAT, EncoderManifest, MANIFEST_FILE, TOKENIZER_FILE};

/// What to train and where.
#[derive(Debug, Clone)]
pub struct EncoderTrainRequest {
    pub corpus_dir: PathBuf,
    pub out: PathBuf,
    /// Continue from `out/checkpoint`.
    pub resume: bool,
    /// Start over even if `out` holds a run.
    pub force: bool,
    pub config: Config,
    /// The command line, recorded in the manifest.
    pub command: Vec<String>,
    pub cancel: CancelFlag,
}

/// The training position saved with each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainState {
    #[serde(flatten)]
    position: Position,
    /// Settings that must not change across a resume.
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
struct TripleSet<'a> {
    split: &'a SplitStreams,
    vocab_size: usize,
    triples: Vec<Triple>,
    lengths: Vec<usize>,
}

impl<'a> TripleSet<'a> {
    fn new(split: &'a SplitStreams, vocab_size: usize, max_tokens: usize) -> TripleSet<'a> {
        let triples = sentence_triples(split);
        let lengths = triples.iter().map(|triple| split.sentence(triple.current).len().min(max_tokens)).collect();
        TripleSet { split, vocab_size, triples, lengths }
    }

    /// The tensors of one batch and its number of tokens. In training (`step` given) with
    /// `sampled_softmax` set, the batch scores a sample of words drawn from a generator seeded by the step,
    /// so that a resumed run draws the same words.
    fn tensors(
        &self,
        batch: &[usize],
        config: &EncoderConfig,
        device: &Device,
        step: impl Into<Option<u64>>,
    ) -> (TripleTensors, usize) {
        let pad = |pick: fn(&Triple) -> usize| {
            PaddedBatch::new(
                batch.iter().map(|&index| self.split.sentence(pick(&self.triples[index]))),
                config.max_tokens,
            )
        };
        let (current, previous, next) = (pad(|t| t.current), pad(|t| t.previous), pad(|t| t.next));
        let tokens = [&current, &previous, &next].iter().map(|padded| padded.lengths.iter().sum::<usize>()).sum();
        let mut tensors = TripleTensors::new(&current, &previous, &next, config.hidden_dim, device);
        if let Some(step) = step.into()
            && config.sampled_softmax > 0
        {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03));
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
    let config = &request.config.encoder;
    let run_dir = RunDir::check(&request.out, request.resume, request.force, &[&request.corpus_dir])?;

    let corpus = Corpus::open(&request.corpus_dir)?;
    let train = TripleSet::new(&corpus.train, corpus.vocabulary.len(), config.max_tokens);
    let valid = TripleSet::new(&corpus.valid, corpus.vocabulary.len(), config.max_tokens);
    if train.triples.is_empty() {
        return Err(TrainError::NoExamples(
            "the train split of the corpus has no book with three or more sentences to make triples from".into(),
        ));
    }

    let run = run_dir.begin()?;
    let device = Device::flex().autodiff();
    // burn's generator is per backend and process-wide: one training per process is reproducible.
    device.seed(config.seed);
    let model_config = SkipThoughtConfig::new(corpus.vocabulary.len(), config.word_dim, config.hidden_dim)
        .with_per_step_context(config.per_step_context)
        .with_bidirectional(config.bidirectional);
    let mut model = model_config.init(&device);
    let mut optimizer =
        AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(config.clip_norm))).init();
    let mut state = TrainState {
        position: Position::default(),
        encoder: config.clone(),
        vocabulary_hash: corpus.manifest.vocabulary.hash.clone(),
    };
    let mut resumed_from = None;
    if request.resume {
        (model, optimizer, state) =
            resume(&request.out, model, optimizer, |saved| check_same_settings(saved, &state, &request.out))?;
        resumed_from = Some(state.position.step);
    }

    let mut task = EncoderTask {
        train: &train,
        valid: &valid,
        config,
        device: device.clone(),
        plan: Vec::new(),
        log: TokenLossLog::resume(&request.out),
    };
    let schedule = Schedule {
        steps: config.steps,
        learning_rate: config.learning_rate,
        validate_every: config.validate_every,
        checkpoint_every: config.checkpoint_every,
    };
    let model = train_steps(
        &mut task,
        model,
        optimizer,
        &mut state,
        &schedule,
        &request.out,
        &request.cancel,
        progress,
        resumed_from,
    )?;
    let (last_train_loss, last_valid_loss) = (task.log.train_loss, task.log.valid_loss);
    export_encoder(request, &corpus, &model, &state, last_train_loss, last_valid_loss)?;
    run.finish()?;
    Ok(EncoderTrainReport {
        out: request.out.clone(),
        steps: state.position.step,
        resumed_from,
        train_loss: last_train_loss,
        valid_loss: last_valid_loss,
        train_triples: train.triples.len(),
        valid_triples: valid.triples.len(),
    })
}

/// The skip-thought loss for the shared loop.
struct EncoderTask<'a> {
    train: &'a TripleSet<'a>,
    valid: &'a TripleSet<'a>,
    config: &'a EncoderConfig,
    device: Device,
    plan: Vec<Vec<usize>>,
    log: TokenLossLog,
}

impl TrainingTask for EncoderTask<'_> {
    type Model = SkipThought;

    fn start_epoch(&mut self, epoch: u64) -> usize {
        self.plan = plan_epoch(&self.train.lengths, self.config.batch_size, self.config.seed, epoch);
        self.plan.len()
    }

    fn loss(&self, model: &SkipThought, index: usize, step: u64) -> (Tensor<1>, usize) {
        let (batch, tokens) = self.train.tensors(&self.plan[index], self.config, &self.device, step);
        (model.loss(&batch), tokens)
    }

    fn log(
        &mut self,
        model: &SkipThought,
        step: u64,
        window: &LossWindow,
        validate: bool,
        elapsed_seconds: f32,
    ) -> (String, String) {
        let valid_loss = if validate { validation_loss(model, self.valid, self.config) } else { None };
        self.log.line(step, window, valid_loss, elapsed_seconds)
    }

    fn validation_score(&self) -> Option<f32> {
        self.log.valid_loss
    }
}

/// Mean loss over the first `valid_batches` batches of the held-out triples (the same batches every time).
fn validation_loss(model: &SkipThought, valid: &TripleSet, config: &EncoderConfig) -> Option<f32> {
    if valid.triples.is_empty() {
        return None;
    }
    let inference = model.valid();
    let device = Device::flex();
    let plan = plan_epoch(&valid.lengths, config.batch_size, config.seed, 0);
    let losses: Vec<f32> = plan
        .iter()
        .take(config.valid_batches)
        .map(|batch| inference.loss(&valid.tensors(batch, config, &device, None).0).into_scalar())
        .collect();
    Some(losses.iter().sum::<f32>() / losses.len() as f32)
}

fn check_same_settings(saved: &TrainState, now: &TrainState, dir: &Path) -> Result<(), TrainError> {
    let (a, b) = (&saved.encoder, &now.encoder);
    require_unchanged(
        dir,
        &[
            ("the corpus vocabulary", saved.vocabulary_hash == now.vocabulary_hash),
            ("encoder.word_dim", a.word_dim == b.word_dim),
            ("encoder.hidden_dim", a.hidden_dim == b.hidden_dim),
            ("encoder.max_tokens", a.max_tokens == b.max_tokens),
            ("encoder.batch_size", a.batch_size == b.batch_size),
            ("encoder.seed", a.seed == b.seed),
            ("encoder.sampled_softmax", a.sampled_softmax == b.sampled_softmax),
            ("encoder.per_step_context", a.per_step_context == b.per_step_context),
            ("encoder.bidirectional", a.bidirectional == b.bidirectional),
        ],
    )
}

/// Writes the encoder half (embedding and encoder GRU) as safetensors, the vocabulary, and the manifest.
fn export_encoder(
    request: &EncoderTrainRequest,
    corpus: &Corpus,
    model: &SkipThought,
    state: &TrainState,
    train_loss: Option<f32>,
    valid_loss: Option<f32>,
) -> Result<(), TrainError> {
    export_weights(model, &request.out.join(ENCODER_FILE), Some(r"^(embedding|encoder|encoder_backward)\."), false)?;
    corpus.vocabulary.save(&request.out.join(TOKENIZER_FILE)).map_err(|error| store_error(&request.out, error))?;
    let config = &request.config.encoder;
    let manifest = EncoderManifest {
        format: ENCODER_FORMAT.into(),
        created_by: crate::corpus::manifest::CreatedBy::now(request.command.clone()),
        corpus: corpus.dir.display().to_string(),
        vocabulary_size: corpus.vocabulary.len(),
        vocabulary_hash: corpus.manifest.vocabulary.hash.clone(),
        word_dim: config.word_dim,
        hidden_dim: config.hidden_dim,
        max_tokens: config.max_tokens,
        steps: state.position.step,
        final_train_loss: train_loss,
        final_valid_loss: valid_loss,
        config: config.clone(),
    };
    write_json(&request.out.join(MANIFEST_FILE), &manifest)?;
    Ok(())
}
