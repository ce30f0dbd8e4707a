//! `storytool train-captioner`: the Show-Attend-Tell captioner's training loop.
//!
//! Every caption of every training photo is an example (teacher forcing); examples are bucketed by length
//! into batches ([`super::batches::plan_epoch`]). The objective is the paper's, per token: negative
//! log-likelihood plus the doubly stochastic attention penalty. Adam with clipping; the validation
//! photos' negative log-likelihood per token (no dropout, no penalty) every `validate_every` steps; the
//! checkpoint, resume, Ctrl-C and NaN-guard behaviour of [`super::run`].

use std::path::{Path, PathBuf};

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::batches::plan_epoch;
use super::run::{
    LossWindow, MANIFEST_FILE, Position, RunState, Schedule, TrainError, TrainingTask, export_weights,
    last_logged_losses, require_unchanged, resume, store_error, train_steps,
};
use super::run_dir::RunDir;
use crate::captioner::data::{CaptionerData, CaptionerImage};
use crate::captioner::trained::{CAPTIONER_FILE, CaptionerManifest, FORMAT, TOKENIZER_FILE, model_config};
use crate::captions::Split;
use crate::config::{CaptionerConfig, Config};
use crate::corpus::manifest::CreatedBy;
use crate::model::batch::PaddedBatch;
use crate::model::captioner::Captioner;
use crate::model::skip_thought::DecoderTargets;
use crate::progress::Progress;
use crate::util::atomic::write_json;
use crate::util::cancel::CancelFlag;

/// Captions per validation batch.
const VALID_BATCH: usize = 64;

#[derive(Debug, Clone)]
pub struct CaptionerTrainRequest {
    pub features: Vec<PathBuf>,
    pub out: PathBuf,
    pub resume: bool,
    pub force: bool,
    pub config: Config,
    pub command: Vec<String>,
    pub cancel: CancelFlag,
}

#[derive(Debug, Clone)]
pub struct CaptionerTrainReport {
    pub steps: u64,
    pub resumed_from: Option<u64>,
    pub train_loss: Option<f32>,
    pub valid_loss: Option<f32>,
    /// Photos in the train, valid and test splits.
    pub images: [usize; 3],
    pub vocabulary_size: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CaptionerState {
    #[serde(flatten)]
    position: Position,
    captioner: CaptionerConfig,
    vocabulary_hash: String,
    cnn_hash: String,
    grid: [usize; 2],
}

impl RunState for CaptionerState {
    fn position(&mut self) -> &mut Position {
        &mut self.position
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptionerMetricsLine {
    pub step: u64,
    /// The objective: negative log-likelihood per token plus the weighted attention penalty per token.
    pub train_loss: f32,
    /// Negative log-likelihood per token of the validation captions.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub valid_loss: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub valid_perplexity: Option<f32>,
    pub tokens_per_second: f32,
    pub elapsed_seconds: f32,
}

/// An example: a training photo (index into the train split) and one of its captions.
#[derive(Debug, Clone, Copy)]
struct Example {
    image: usize,
    caption: usize,
}

fn examples(images: &[&CaptionerImage]) -> Vec<Example> {
    images
        .iter()
        .enumerate()
        .flat_map(|(image, photo)| (0..photo.captions.len()).map(move |caption| Example { image, caption }))
        .collect()
}

/// Trains (or resumes) a captioner on the features folders of `request`.
pub fn train_captioner(
    request: &CaptionerTrainRequest,
    progress: &dyn Progress,
) -> Result<CaptionerTrainReport, TrainError> {
    let config = &request.config.captioner;
    let inputs: Vec<&Path> = request.features.iter().map(PathBuf::as_path).collect();
    let run_dir = RunDir::check(&request.out, request.resume, request.force, &inputs)?;
    let data =
        CaptionerData::load(&request.features, config, None).map_err(|error| TrainError::Input(error.to_string()))?;
    let train = data.split(Split::Train);
    let valid = data.split(Split::Valid);
    let train_examples = examples(&train);
    if train_examples.is_empty() {
        return Err(TrainError::NoExamples(format!(
            "no captioned training photos ({} photos in all)",
            data.images.len()
        )));
    }

    let run = run_dir.begin()?;
    let device = Device::flex().autodiff();
    device.seed(config.seed);
    let mut model = model_config(config, data.vocabulary.len(), data.spatial.dim).init(&device);
    let mut optimizer =
        AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(config.clip_norm))).init();
    let mut state = CaptionerState {
        position: Position::default(),
        captioner: config.clone(),
        vocabulary_hash: data.vocabulary.content_hash(),
        cnn_hash: data.cnn.blake3.clone(),
        grid: data.spatial.grid,
    };
    let mut resumed_from = None;
    if request.resume {
        (model, optimizer, state) =
            resume(&request.out, model, optimizer, |saved| check_same_settings(saved, &state, &request.out))?;
        resumed_from = Some(state.position.step);
    }

    let lengths: Vec<usize> = train_examples
        .iter()
        .map(|example| train[example.image].captions[example.caption].len().min(config.max_tokens))
        .collect();
    let (train_loss, valid_loss) = last_logged_losses(&request.out);
    let mut task = CaptionerTask {
        data: &data,
        train: &train,
        valid: &valid,
        examples: &train_examples,
        lengths,
        config,
        device: device.clone(),
        plan: Vec::new(),
        train_loss,
        valid_loss,
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
    let (train_loss, valid_loss) = (task.train_loss, task.valid_loss);
    export_captioner(request, &data, &model, &state, train_loss, valid_loss)?;
    run.finish()?;
    Ok(CaptionerTrainReport {
        steps: state.position.step,
        resumed_from,
        train_loss,
        valid_loss,
        images: [train.len(), valid.len(), data.split(Split::Test).len()],
        vocabulary_size: data.vocabulary.len(),
    })
}

/// Negative log-likelihood per token of every caption of `photos`, without dropout; `None` without any.
pub fn validation_nll(
    model: &Captioner,
    data: &CaptionerData,
    photos: &[&CaptionerImage],
    max_tokens: usize,
) -> Option<f32> {
    let device = Device::flex();
    let pairs: Vec<(&CaptionerImage, &[u32])> = photos
        .iter()
        .flat_map(|photo| photo.captions.iter().map(move |caption| (*photo, caption.as_slice())))
        .collect();
    let (mut nll, mut tokens) = (0.0f64, 0.0f64);
    for chunk in pairs.chunks(VALID_BATCH) {
        let photos: Vec<&CaptionerImage> = chunk.iter().map(|(photo, _)| *photo).collect();
        let batch = PaddedBatch::new(chunk.iter().map(|(_, caption)| *caption), max_tokens);
        let (loss, _) =
            model.forward_targets(data.annotation_batch(&photos, &device), &DecoderTargets::new(&batch, &device));
        nll += f64::from(loss.nll.into_scalar::<f32>());
        tokens += f64::from(loss.tokens.into_scalar::<f32>());
    }
    (tokens > 0.0).then(|| (nll / tokens) as f32)
}

/// The captioner's loss for the shared loop.
struct CaptionerTask<'a> {
    data: &'a CaptionerData,
    train: &'a [&'a CaptionerImage],
    valid: &'a [&'a CaptionerImage],
    examples: &'a [Example],
    lengths: Vec<usize>,
    config: &'a CaptionerConfig,
    device: Device,
    plan: Vec<Vec<usize>>,
    train_loss: Option<f32>,
    valid_loss: Option<f32>,
}

impl TrainingTask for CaptionerTask<'_> {
    type Model = Captioner;

    fn start_epoch(&mut self, epoch: u64) -> usize {
        self.plan = plan_epoch(&self.lengths, self.config.batch_size, self.config.seed, epoch);
        self.plan.len()
    }

    fn loss(&self, model: &Captioner, index: usize, step: u64) -> (Tensor<1>, usize) {
        // Dropout masks drawn from a generator seeded by the step: a resumed run draws what an
        // uninterrupted one would have.
        self.device.seed(self.config.seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let batch = &self.plan[index];
        let photos: Vec<&CaptionerImage> =
            batch.iter().map(|&example| self.train[self.examples[example].image]).collect();
        let padded = PaddedBatch::new(
            batch.iter().map(|&example| {
                let Example { image, caption } = self.examples[example];
                self.train[image].captions[caption].as_slice()
            }),
            self.config.max_tokens,
        );
        let tokens = padded.lengths.iter().sum();
        let targets = DecoderTargets::new(&padded, &self.device);
        let (loss, _) = model.forward_targets(self.data.annotation_batch(&photos, &self.device), &targets);
        (loss.objective(self.config.attention_penalty), tokens)
    }

    fn log(
        &mut self,
        model: &Captioner,
        step: u64,
        window: &LossWindow,
        validate: bool,
        elapsed_seconds: f32,
    ) -> (String, String) {
        let train_loss = window.mean();
        self.train_loss = Some(train_loss);
        let valid_loss =
            if validate { validation_nll(&model.valid(), self.data, self.valid, self.config.max_tokens) } else { None };
        if valid_loss.is_some() {
            self.valid_loss = valid_loss;
        }
        let line = CaptionerMetricsLine {
            step,
            train_loss,
            valid_loss,
            valid_perplexity: valid_loss.map(f32::exp),
            tokens_per_second: window.items_per_second(),
            elapsed_seconds,
        };
        let message = format!(
            "loss {:.3} {:.0} tok/s{}",
            line.train_loss,
            line.tokens_per_second,
            self.valid_loss.map(|loss| format!(" valid nll {loss:.3} ppl {:.1}", loss.exp())).unwrap_or_default()
        );
        (serde_json::to_string(&line).expect("metrics serialize"), message)
    }

    fn validation_score(&self) -> Option<f32> {
        self.valid_loss
    }
}

fn check_same_settings(saved: &CaptionerState, now: &CaptionerState, dir: &std::path::Path) -> Result<(), TrainError> {
    let (a, b) = (&saved.captioner, &now.captioner);
    require_unchanged(
        dir,
        &[
            ("the caption vocabulary", saved.vocabulary_hash == now.vocabulary_hash),
            ("the CNN of the features", saved.cnn_hash == now.cnn_hash),
            ("the spatial grid of the features", saved.grid == now.grid),
            ("captioner.word_dim", a.word_dim == b.word_dim),
            ("captioner.hidden_dim", a.hidden_dim == b.hidden_dim),
            ("captioner.attention_dim", a.attention_dim == b.attention_dim),
            ("captioner.max_tokens", a.max_tokens == b.max_tokens),
            ("captioner.batch_size", a.batch_size == b.batch_size),
            ("captioner.seed", a.seed == b.seed),
            ("captioner.valid_percent", a.valid_percent == b.valid_percent),
            ("captioner.test_percent", a.test_percent == b.test_percent),
        ],
    )
}

fn export_captioner(
    request: &CaptionerTrainRequest,
    data: &CaptionerData,
    model: &Captioner,
    state: &CaptionerState,
    train_loss: Option<f32>,
    valid_loss: Option<f32>,
) -> Result<(), TrainError> {
    // f16: half the size; captions do not notice (widened back to f32 when loaded).
    export_weights(model, &request.out.join(CAPTIONER_FILE), None, true)?;
    data.vocabulary.save(&request.out.join(TOKENIZER_FILE)).map_err(|error| store_error(&request.out, error))?;
    let manifest = CaptionerManifest {
        format: FORMAT.into(),
        created_by: CreatedBy::now(request.command.clone()),
        features: data.inputs.clone(),
        cnn: data.cnn.clone(),
        image_size: data.image_size,
        grid: data.spatial.grid,
        feature_dim: data.spatial.dim,
        vocabulary_size: data.vocabulary.len(),
        vocabulary_hash: data.vocabulary.content_hash(),
        steps: state.position.step,
        final_train_loss: train_loss,
        final_valid_loss: valid_loss,
        config: request.config.captioner.clone(),
    };
    write_json(&request.out.join(MANIFEST_FILE), &manifest)?;
    Ok(())
}
