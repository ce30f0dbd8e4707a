//! What every trainer shares: the run folder (fresh, `--force`, or `--resume`), checkpoints written to a
//! staging folder and renamed into place (model and optimizer as burnpack files, the position as JSON),
//! `metrics.jsonl` cut back to the checkpoint on resume, a running loss window, and the errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer, OptimizerRecord};
use burn::store::{BurnpackStore, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::data_parallel::{self, Share};
use crate::config::TrainSchedule;
use crate::corpus::CorpusError;
use crate::progress::Progress;
use crate::util::atomic::{StagingDir, StagingError, write_file, write_json};
use crate::util::cancel::{CancelFlag, Interrupted};
use crate::util::tensor_file::halve_float_tensors;
use crate::util::{Cause, IoContext, PathError};

pub const CHECKPOINT_DIR: &str = "checkpoint";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const MANIFEST_FILE: &str = "manifest.json";
const MODEL_FILE: &str = "model.bpk";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const STATE_FILE: &str = "state.json";
/// The weights of the best validation point so far, and which step and score that was.
const BEST_MODEL_FILE: &str = "best.bpk";
pub const BEST_FILE: &str = "best.json";

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error("cannot save or load `{path}`")]
    Store {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("cannot use the encoder")]
    Encoder(#[from] crate::encoder::EncoderError),
    #[error("cannot use the features")]
    VseData(#[from] crate::retrieval::data::VseDataError),
    #[error("cannot use the features")]
    CaptionerData(#[from] crate::captioner::data::CaptionerDataError),
    #[error("cannot read the word vectors")]
    Vectors(#[from] crate::vectors::readers::VectorsError),
    #[error("`{0}` already holds a training run\n\nhint: pass `--resume` to continue it or `--force` to start over")]
    RunExists(PathBuf),
    #[error("`{0}` has no checkpoint to resume from")]
    NoCheckpoint(PathBuf),
    #[error(
        "the checkpoint in `{dir}` was made with other settings ({what} differs)\n\nhint: resume with the settings it was started with, or start over with `--force`"
    )]
    SettingsChanged { dir: PathBuf, what: String },
    #[error("nothing to train on: {0}")]
    NoExamples(String),
    #[error("{0}")]
    Input(String),
    #[error(
        "the loss became {loss} at step {step}; training stopped before applying it{}\n\nhint: lower the learning rate",
        checkpoint_step.map_or(String::from(" (no checkpoint had been written yet)"), |kept| format!(" and the checkpoint of step {kept} is kept"))
    )]
    NonFinite { step: u64, loss: f32, checkpoint_step: Option<u64> },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// Writes model, optimizer and position to `out/checkpoint`, replacing the last one only when complete.
pub fn save_checkpoint<M: Module>(
    out: &Path,
    model: &M,
    optimizer: &ModuleOptimizer,
    state: &impl Serialize,
) -> Result<(), TrainError> {
    let staging = StagingDir::new(&out.join(CHECKPOINT_DIR), true)?;
    let model_path = staging.path().join(MODEL_FILE);
    let mut store = BurnpackStore::from_file(&model_path).overwrite(true);
    model.save_into(&mut store).map_err(|error| store_error(&model_path, error))?;
    let optimizer_path = staging.path().join(OPTIMIZER_FILE);
    optimizer.to_record().save(&optimizer_path).map_err(|error| store_error(&optimizer_path, error))?;
    write_json(&staging.path().join(STATE_FILE), state)?;
    staging.commit()?;
    Ok(())
}

/// The saved position of `out/checkpoint`.
pub fn load_state<S: DeserializeOwned>(out: &Path) -> Result<S, TrainError> {
    read_json(&out.join(CHECKPOINT_DIR).join(STATE_FILE))
}

/// Loads the checkpoint's weights and optimizer state into freshly built ones, and cuts `metrics.jsonl`
/// back to `step`.
pub fn load_checkpoint<M: Module>(
    out: &Path,
    mut model: M,
    optimizer: ModuleOptimizer,
    step: u64,
) -> Result<(M, ModuleOptimizer), TrainError> {
    let dir = out.join(CHECKPOINT_DIR);
    let model_path = dir.join(MODEL_FILE);
    let mut store = BurnpackStore::from_file(&model_path);
    model.load_from(&mut store).map_err(|error| store_error(&model_path, error))?;
    let optimizer_path = dir.join(OPTIMIZER_FILE);
    let record = OptimizerRecord::load(&optimizer_path).map_err(|error| store_error(&optimizer_path, error))?;
    truncate_metrics(&out.join(METRICS_FILE), step)?;
    Ok((model, optimizer.load_record(record)))
}

/// `metrics.jsonl`, appended to line by line.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    pub fn open(out: &Path) -> Result<MetricsLog, TrainError> {
        let path = out.join(METRICS_FILE);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).path_context("open", &path)?;
        Ok(MetricsLog { path, file })
    }

    pub fn write(&mut self, line: &impl Serialize) -> Result<(), TrainError> {
        self.write_json(&serde_json::to_string(line).expect("metrics serialize"))
    }

    /// Appends a line already serialized as JSON.
    pub fn write_json(&mut self, json: &str) -> Result<(), TrainError> {
        writeln!(self.file, "{json}").path_context("write", &self.path)?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), TrainError> {
        self.file.flush().path_context("write", &self.path)?;
        Ok(())
    }
}

/// Drops metric lines past `step`: they were logged after the checkpoint a resume starts from.
fn truncate_metrics(path: &Path, step: u64) -> Result<(), TrainError> {
    #[derive(serde::Deserialize)]
    struct Step {
        step: u64,
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|line| serde_json::from_str::<Step>(line).is_ok_and(|metrics| metrics.step <= step))
        .map(|line| format!("{line}\n"))
        .collect();
    write_file(path, kept.as_bytes())?;
    Ok(())
}

/// The last logged training loss and validation loss in `metrics.jsonl` (a resumed run that has no steps
/// left reports these).
pub fn last_logged_losses(out: &Path) -> (Option<f32>, Option<f32>) {
    #[derive(serde::Deserialize)]
    struct Losses {
        train_loss: Option<f32>,
        valid_loss: Option<f32>,
    }
    let Ok(text) = std::fs::read_to_string(out.join(METRICS_FILE)) else {
        return (None, None);
    };
    let lines: Vec<Losses> = text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    (lines.iter().rev().find_map(|l| l.train_loss), lines.iter().rev().find_map(|l| l.valid_loss))
}

/// Mean training loss and throughput since the last log line.
#[derive(Debug)]
pub struct LossWindow {
    sum: f64,
    count: usize,
    items: usize,
    started: Instant,
}

impl Default for LossWindow {
    fn default() -> Self {
        LossWindow { sum: 0.0, count: 0, items: 0, started: Instant::now() }
    }
}

impl LossWindow {
    /// One step's loss and how many items (tokens, pairs) it saw.
    pub fn add(&mut self, loss: f32, items: usize) {
        self.sum += f64::from(loss);
        self.count += 1;
        self.items += items;
    }

    pub fn mean(&self) -> f32 {
        (self.sum / self.count.max(1) as f64) as f32
    }

    pub fn items_per_second(&self) -> f32 {
        self.items as f32 / self.started.elapsed().as_secs_f32().max(1e-6)
    }
}

pub fn store_error(path: &Path, error: impl Into<Cause>) -> TrainError {
    TrainError::Store { path: path.to_path_buf(), source: error.into() }
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let bytes = std::fs::read(path).path_context("read", path)?;
    serde_json::from_slice(&bytes).map_err(|error| store_error(path, error))
}

/// Where a run is: optimizer steps done, and the epoch and index in that epoch's plan of the next batch.
/// Flattened into each trainer's saved state, so a resume continues with the same batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub step: u64,
    pub epoch: u64,
    pub batch_in_epoch: usize,
}

/// A trainer's saved state: its position and whatever else must match on resume.
pub trait RunState: Serialize {
    fn position(&mut self) -> &mut Position;
}

/// What a trainer gives [`train_steps`]: its batches, its loss and its log lines.
pub trait TrainingTask {
    type Model: Module;
    /// Builds the plan of `epoch` and returns how many batches it has.
    fn start_epoch(&mut self, epoch: u64) -> usize;
    /// The loss of batch `index` of the current plan (`step` seeds any sampling, so a resume draws the
    /// same) and how many items (tokens, pairs) it covers.
    fn loss(&self, model: &Self::Model, index: usize, step: u64) -> (Tensor<1>, usize);
    /// The `metrics.jsonl` line for `step` (with validation when `validate`), serialized, and the progress
    /// message.
    fn log(
        &mut self,
        model: &Self::Model,
        step: u64,
        window: &LossWindow,
        validate: bool,
        elapsed_seconds: f32,
    ) -> (String, String);
    /// The last validation's score, lower being better (a loss; a negated recall), if one ran.
    fn validation_score(&self) -> Option<f32>;
    /// Share `part` of `parts` of batch `index` with its tensors on `device`, for data-parallel training
    /// ([`super::data_parallel`]), or `None` when that share has no rows (a batch smaller than the device
    /// count). Only the tasks of trainers that declare [`super::trainer::Trainer::DATA_PARALLEL`] are split,
    /// and `train` refuses a device list for the others before anything runs, so this default is never
    /// called.
    fn share(
        &self,
        _index: usize,
        _step: u64,
        _part: usize,
        _parts: usize,
        _device: &Device,
    ) -> Option<Share<'_, Self::Model>> {
        unreachable!("a task is split only when its trainer declares DATA_PARALLEL, which `train` checks first")
    }
}

/// The best validation point of a run (`best.json`): the weights exported are this step's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestPoint {
    pub step: u64,
    pub score: f32,
}

/// The best validation point recorded in `out`, if any.
pub fn best_point(out: &Path) -> Option<BestPoint> {
    read_json(&out.join(BEST_FILE)).ok()
}

/// Keeps `model` as the best so far: its weights beside the checkpoint (through a partial file and a
/// rename), then `best.json`, written last so that it never names weights that are not there.
fn save_best<M: Module>(out: &Path, model: &M, best: BestPoint) -> Result<(), TrainError> {
    let path = out.join(BEST_MODEL_FILE);
    let partial = out.join(format!("{BEST_MODEL_FILE}.partial"));
    let mut store = BurnpackStore::from_file(&partial).overwrite(true);
    model.save_into(&mut store).map_err(|error| store_error(&partial, error))?;
    std::fs::rename(&partial, &path).path_context("move into place", &path)?;
    write_json(&out.join(BEST_FILE), &best)?;
    Ok(())
}

/// The loop every trainer shares: until `schedule.steps`, take the next batch (starting a new epoch when
/// the plan is used up), stop before applying a non-finite loss, step the optimizer, log every 10 steps
/// and at each validation, checkpoint every `checkpoint_every` steps and at the end, and on cancellation
/// write a checkpoint and return [`Interrupted`]. Returns the trained model.
#[allow(clippy::too_many_arguments)]
pub fn train_steps<T: TrainingTask, S: RunState>(
    task: &mut T,
    mut model: T::Model,
    mut optimizer: ModuleOptimizer,
    state: &mut S,
    schedule: &TrainSchedule,
    out: &Path,
    cancel: &CancelFlag,
    progress: &dyn Progress,
    mut checkpoint_step: Option<u64>,
    devices: &[Device],
) -> Result<T::Model, TrainError>
where
    T::Model: Send,
{
    let mut metrics = MetricsLog::open(out)?;
    let mut best = best_point(out).filter(|best| best.step <= state.position().step);
    progress.set_total(schedule.steps);
    progress.advance(state.position().step);
    let started = Instant::now();
    let mut window = LossWindow::default();
    let mut plan_len = task.start_epoch(state.position().epoch);
    while state.position().step < schedule.steps {
        if cancel.is_cancelled() {
            save_checkpoint(out, &model, &optimizer, state)?;
            return Err(Interrupted.into());
        }
        let position = state.position();
        if position.batch_in_epoch >= plan_len {
            position.epoch += 1;
            position.batch_in_epoch = 0;
            plan_len = task.start_epoch(position.epoch);
        }
        let (loss_value, items, grads) = if devices.len() > 1 {
            let result = data_parallel::step(task, &model, position.batch_in_epoch, position.step, devices);
            (result.loss, result.items, Some(result.grads))
        } else {
            let (loss, items) = task.loss(&model, position.batch_in_epoch, position.step);
            let loss_value: f32 = loss.clone().into_scalar();
            (loss_value, items, loss_value.is_finite().then(|| GradientsParams::from_grads(loss.backward(), &model)))
        };
        let Some(grads) = grads.filter(|_| loss_value.is_finite()) else {
            return Err(TrainError::NonFinite { step: position.step + 1, loss: loss_value, checkpoint_step });
        };
        model = optimizer.step(schedule.learning_rate, model, grads);
        position.step += 1;
        position.batch_in_epoch += 1;
        let step = position.step;
        window.add(loss_value, items);
        progress.advance(1);

        let validate = step % schedule.validate_every == 0 || step == schedule.steps;
        if validate || step % 10 == 0 {
            let (line, message) = task.log(&model, step, &window, validate, started.elapsed().as_secs_f32());
            progress.set_message(&message);
            metrics.write_json(&line)?;
            window = LossWindow::default();
            if let Some(score) = task.validation_score().filter(|_| validate)
                && best.is_none_or(|best| score < best.score)
            {
                best = Some(BestPoint { step, score });
                save_best(out, &model, BestPoint { step, score })?;
            }
        }
        if step % schedule.checkpoint_every == 0 || step == schedule.steps {
            metrics.flush()?;
            save_checkpoint(out, &model, &optimizer, state)?;
            checkpoint_step = Some(step);
        }
    }
    progress.finish();
    // Export the best validation point, not the last step: small data overfits late in a run.
    if let Some(best) = best
        && best.step < state.position().step
    {
        let path = out.join(BEST_MODEL_FILE);
        let mut store = BurnpackStore::from_file(&path);
        model.load_from(&mut store).map_err(|error| store_error(&path, error))?;
    }
    Ok(model)
}

/// One `metrics.jsonl` line of a trainer whose loss is per token (the skip-thought encoder, the story
/// decoder).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsLine {
    pub step: u64,
    pub train_loss: f32,
    pub train_perplexity: f32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub valid_loss: Option<f32>,
    pub tokens_per_second: f32,
    pub elapsed_seconds: f32,
}

/// The last losses a per-token trainer logged, and its log line.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenLossLog {
    pub train_loss: Option<f32>,
    pub valid_loss: Option<f32>,
}

impl TokenLossLog {
    /// Starts from what `out/metrics.jsonl` last logged (a resumed run with no steps left reports it).
    pub fn resume(out: &Path) -> TokenLossLog {
        let (train_loss, valid_loss) = last_logged_losses(out);
        TokenLossLog { train_loss, valid_loss }
    }

    /// The line and message for `step`; `valid_loss` is this step's validation, if it ran.
    pub fn line(
        &mut self,
        step: u64,
        window: &LossWindow,
        valid_loss: Option<f32>,
        elapsed_seconds: f32,
    ) -> (String, String) {
        let train_loss = window.mean();
        self.train_loss = Some(train_loss);
        if valid_loss.is_some() {
            self.valid_loss = valid_loss;
        }
        let line = MetricsLine {
            step,
            train_loss,
            train_perplexity: train_loss.exp(),
            valid_loss,
            tokens_per_second: window.items_per_second(),
            elapsed_seconds,
        };
        let message = format!(
            "loss {:.3} ppl {:.1} {:.0} tok/s{}",
            line.train_loss,
            line.train_perplexity,
            line.tokens_per_second,
            self.valid_loss.map(|loss| format!(" valid {loss:.3}")).unwrap_or_default()
        );
        (serde_json::to_string(&line).expect("metrics serialize"), message)
    }
}

/// Refuses a resume when a setting that shapes the run changed: `checks` pairs each setting's name with
/// whether the checkpoint's value equals the current one; the first that differs is named.
pub fn require_unchanged(dir: &Path, checks: &[(impl AsRef<str>, bool)]) -> Result<(), TrainError> {
    match checks.iter().find(|(_, same)| !same) {
        Some((what, _)) => Err(TrainError::SettingsChanged { dir: dir.to_path_buf(), what: what.as_ref().to_string() }),
        None => Ok(()),
    }
}

/// Continues the run in `out`: reads the saved state, lets `check` compare it with the current settings,
/// and loads the checkpoint's weights and optimizer state into the fresh ones.
pub fn resume<M: Module, S: RunState + DeserializeOwned>(
    out: &Path,
    model: M,
    optimizer: ModuleOptimizer,
    check: impl FnOnce(&S) -> Result<(), TrainError>,
) -> Result<(M, ModuleOptimizer, S), TrainError> {
    let mut saved: S = load_state(out)?;
    check(&saved)?;
    let step = saved.position().step;
    let (model, optimizer) = load_checkpoint(out, model, optimizer, step)?;
    Ok((model, optimizer, saved))
}

/// Writes a trained model's weights as safetensors at `path` through a partial file and a rename: only
/// the tensors whose path matches `only` when given, in f16 with `half`.
pub fn export_weights<M: Module>(model: &M, path: &Path, only: Option<&str>, half: bool) -> Result<(), TrainError> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut store = SafetensorsStore::from_file(&partial).overwrite(true);
    if let Some(pattern) = only {
        store = store.with_regex(pattern);
    }
    model.save_into(&mut store).map_err(|error| store_error(&partial, error))?;
    if half {
        halve_float_tensors(&partial).map_err(|error| store_error(&partial, error))?;
    }
    std::fs::rename(&partial, path).path_context("move into place", path)?;
    Ok(())
}
