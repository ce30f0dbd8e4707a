//! What every trainer shares: the run folder (fresh, `--force`, or `--resume`), checkpoints written to a
//! staging folder and renamed into place (model and optimizer as burnpack files, the position as JSON),
//! `metrics.jsonl` cut back to the checkpoint on resume, a running loss window, and the errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::{BurnpackStore, ModuleSnapshot};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::corpus::CorpusError;
use crate::util::atomic::{StagingDir, StagingError, write_file, write_json};
use crate::util::cancel::Interrupted;
use crate::util::{IoContext, PathError};

pub const CHECKPOINT_DIR: &str = "checkpoint";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const MANIFEST_FILE: &str = "manifest.json";
const MODEL_FILE: &str = "model.bpk";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const STATE_FILE: &str = "state.json";

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error("cannot save or load `{path}`: {message}")]
    Store { path: PathBuf, message: String },
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

/// Makes `out` ready: it must hold a checkpoint to resume, and is emptied with `force`.
pub fn prepare_run_dir(out: &Path, resume: bool, force: bool) -> Result<(), TrainError> {
    if resume {
        if !out.join(CHECKPOINT_DIR).join(STATE_FILE).is_file() {
            return Err(TrainError::NoCheckpoint(out.to_path_buf()));
        }
    } else if out.exists() {
        if !force {
            return Err(TrainError::RunExists(out.to_path_buf()));
        }
        std::fs::remove_dir_all(out).path_context("remove", out)?;
    }
    std::fs::create_dir_all(out).path_context("create folder", out)?;
    Ok(())
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
        let json = serde_json::to_string(line).expect("metrics serialize");
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

pub fn store_error(path: &Path, error: impl std::fmt::Display) -> TrainError {
    TrainError::Store { path: path.to_path_buf(), message: error.to_string() }
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let bytes = std::fs::read(path).path_context("read", path)?;
    serde_json::from_slice(&bytes).map_err(|error| store_error(path, error))
}
