//! `storytool train-captioner`: the Show-Attend-Tell captioner's training loop.
//!
//! Every caption of every training photo is an example (teacher forcing); examples are bucketed by length
//! into batches ([`super::batches::plan_epoch`]). The objective is the paper's, per token: negative
//! log-likelihood plus the doubly stochastic attention penalty. Adam with clipping; the validation
//! photos' negative log-likelihood per token (no dropout, no penalty) every `validate_every` steps; the
//! checkpoint, resume, Ctrl-C and NaN-guard behaviour of [`super::run`].

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::batches::plan_epoch;
use super::run::{
    LossWindow, MANIFEST_FILE, Position, RunState, TrainError, TrainingTask, export_weights, last_logged_losses,
    store_error,
};
use super::trainer::{RunEnd, RunOptions, Trainer, train};
use crate::captioner::data::{CaptionerData, CaptionerImage};
use crate::captioner::trained::{CAPTIONER_FILE, CaptionerManifest, FORMAT, TOKENIZER_FILE, model_config};
use crate::captions::Split;
use crate::config::{CaptionerConfig, Config, TrainSchedule};
use crate::corpus::manifest::CreatedBy;
use crate::model::batch::PaddedBatch;
use crate::model::captioner::Captioner;
use crate::model::skip_thought::DecoderTargets;
use crate::progress::Progress;
use crate::util::atomic::write_json;

/// Captions per validation batch.
const VALID_BATCH: usize = 64;

#[derive(Debug, Clone)]
pub struct CaptionerTrainRequest {
    pub features: Vec<PathBuf>,
    pub config: Config,
    pub run: RunOptions,
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
pub struct CaptionerState {
    #[serde(flatten)]
    position: Position,
    #[serde(deserialize_with = "crate::config::section_with_lifted_schedule")]
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
pub struct Example {
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
    train(request, progress)
}

impl Trainer for CaptionerTrainRequest {
    type Data = CaptionerData;
    type Model = Captioner;
    type State = CaptionerState;
    type Task<'a> = CaptionerTask<'a>;
    type Report = CaptionerTrainReport;

    fn options(&self) -> &RunOptions {
        &self.run
    }

    fn schedule(&self) -> &TrainSchedule {
        &self.config.captioner.train
    }

    fn inputs(&self) -> Vec<&Path> {
        self.features.iter().map(PathBuf::as_path).collect()
    }

    fn open(&self, _progress: &dyn Progress) -> Result<CaptionerData, TrainError> {
        let data = CaptionerData::load(&self.features, &self.config.captioner, None)?;
        if examples(&data.split(Split::Train)).is_empty() {
            return Err(TrainError::NoExamples(format!(
                "no captioned training photos ({} photos in all)",
                data.images.len()
            )));
        }
        Ok(data)
    }

    fn init(&self, data: &CaptionerData, device: &Device) -> Result<(Captioner, CaptionerState), TrainError> {
        let config = &self.config.captioner;
        let model = model_config(config, data.vocabulary.len(), data.spatial.dim).init(device);
        let state = CaptionerState {
            position: Position::default(),
            captioner: config.clone(),
            vocabulary_hash: data.vocabulary.content_hash(),
            cnn_hash: data.cnn.blake3.clone(),
            grid: data.spatial.grid,
        };
        Ok((model, state))
    }

    fn unchanged(saved: &CaptionerState, now: &CaptionerState) -> Vec<(String, bool)> {
        let mut checks = vec![
            ("the caption vocabulary".to_string(), saved.vocabulary_hash == now.vocabulary_hash),
            ("the CNN of the features".into(), saved.cnn_hash == now.cnn_hash),
            ("the spatial grid of the features".into(), saved.grid == now.grid),
        ];
        checks.extend(saved.captioner.unchanged(&now.captioner));
        checks
    }

    fn task<'a>(&'a self, data: &'a CaptionerData, device: &Device) -> CaptionerTask<'a> {
        let config = &self.config.captioner;
        let train = data.split(Split::Train);
        let examples = examples(&train);
        let lengths = examples
            .iter()
            .map(|example| train[example.image].captions[example.caption].len().min(config.max_tokens))
            .collect();
        let (train_loss, valid_loss) = last_logged_losses(&self.run.out);
        CaptionerTask {
            data,
            train,
            valid: data.split(Split::Valid),
            examples,
            lengths,
            config,
            device: device.clone(),
            plan: Vec::new(),
            train_loss,
            valid_loss,
        }
    }

    fn export(
        &self,
        data: &CaptionerData,
        model: &Captioner,
        _state: &CaptionerState,
        task: &CaptionerTask<'_>,
        end: RunEnd,
    ) -> Result<CaptionerTrainReport, TrainError> {
        let (train_loss, valid_loss) = (task.train_loss, task.valid_loss);
        export_captioner(self, data, model, end.steps, train_loss, valid_loss)?;
        Ok(CaptionerTrainReport {
            steps: end.steps,
            resumed_from: end.resumed_from,
            train_loss,
            valid_loss,
            images: [task.train.len(), task.valid.len(), data.split(Split::Test).len()],
            vocabulary_size: data.vocabulary.len(),
        })
    }
}

/// Negative log-likelihood per token of every caption of `photos`, without dropout; `None` without any.
pub fn validation_nll(
    model: &Captioner,
    data: &CaptionerData,
    photos: &[&CaptionerImage],
    max_tokens: usize,
) -> Option<f32> {
    let device = crate::device::of_module(model);
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
pub struct CaptionerTask<'a> {
    data: &'a CaptionerData,
    train: Vec<&'a CaptionerImage>,
    valid: Vec<&'a CaptionerImage>,
    examples: Vec<Example>,
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
        self.plan = plan_epoch(&self.lengths, self.config.train.batch_size, self.config.train.seed, epoch);
        self.plan.len()
    }

    fn loss(&self, model: &Captioner, index: usize, step: u64) -> (Tensor<1>, usize) {
        // Dropout masks drawn from a generator seeded by the step: a resumed run draws what an
        // uninterrupted one would have.
        self.device.seed(self.config.train.seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
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
        let valid_loss = if validate {
            validation_nll(&model.valid(), self.data, &self.valid, self.config.max_tokens)
        } else {
            None
        };
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

fn export_captioner(
    request: &CaptionerTrainRequest,
    data: &CaptionerData,
    model: &Captioner,
    steps: u64,
    train_loss: Option<f32>,
    valid_loss: Option<f32>,
) -> Result<(), TrainError> {
    let out = &request.run.out;
    // f16: half the size; captions do not notice (widened back to f32 when loaded).
    export_weights(model, &out.join(CAPTIONER_FILE), None, true)?;
    data.vocabulary.save(&out.join(TOKENIZER_FILE)).map_err(|error| store_error(out, error))?;
    let manifest = CaptionerManifest {
        format: FORMAT.into(),
        created_by: CreatedBy::now(request.run.command.clone()),
        features: data.inputs.clone(),
        cnn: data.cnn.clone(),
        image_size: data.image_size,
        grid: data.spatial.grid,
        feature_dim: data.spatial.dim,
        vocabulary_size: data.vocabulary.len(),
        vocabulary_hash: data.vocabulary.content_hash(),
        steps,
        final_train_loss: train_loss,
        final_valid_loss: valid_loss,
        config: request.config.captioner.clone(),
    };
    write_json(&out.join(MANIFEST_FILE), &manifest)?;
    Ok(())
}
