//! The one skeleton every trainer runs in: check the run folder, open and check the inputs, prepare the
//! folder, build model and optimizer, resume, run the steps, export. A trainer supplies only what is its own
//! (a [`Trainer`]: its inputs, data, model, saved state, loss and export); the order of the steps, the
//! optimizer, seeding and the resume checks live here once.
//!
//! The order matters for what a user keeps: nothing on disk changes until every input has been opened and
//! checked ([`RunDir::check`] first, [`RunDir::begin`] after [`Trainer::open`]), and the run folder is
//! finished (a replaced run deleted) only once the new one has exported.

use std::path::{Path, PathBuf};

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::Device;
use serde::de::DeserializeOwned;

use super::run::{RunState, TrainError, TrainingTask, require_unchanged, resume, train_steps};
use super::run_dir::RunDir;
use crate::config::TrainSchedule;
use crate::progress::Progress;
use crate::util::cancel::CancelFlag;

/// Where a run goes and how it starts: what every `train-*` command (and the pipeline) gives a trainer.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run folder: checkpoints, `metrics.jsonl` and the exported model.
    pub out: PathBuf,
    /// Continue from `out/checkpoint`.
    pub resume: bool,
    /// Replace the run in `out` (only once the new one has exported).
    pub force: bool,
    /// The command line, recorded in the exported manifest.
    pub command: Vec<String>,
    pub cancel: CancelFlag,
}

impl RunOptions {
    /// A fresh run into `out` with no command line recorded and no way to cancel it (tests, the pipeline).
    pub fn new(out: impl Into<PathBuf>) -> RunOptions {
        RunOptions { out: out.into(), resume: false, force: false, command: Vec::new(), cancel: CancelFlag::default() }
    }
}

/// Where a finished run ended: what an export records and a report shows.
#[derive(Debug, Clone, Copy)]
pub struct RunEnd {
    /// Optimizer steps done in all (the checkpoint's, for a resume with none left).
    pub steps: u64,
    /// The step a `--resume` continued from.
    pub resumed_from: Option<u64>,
}

/// One model's training: what [`train`] needs besides the shared loop.
pub trait Trainer {
    /// The opened and checked inputs (a corpus, features, an encoder...).
    type Data;
    type Model: Module;
    /// The position and the settings saved with each checkpoint.
    type State: RunState + DeserializeOwned;
    /// The loss, batches and log lines over `Data`.
    type Task<'a>: TrainingTask<Model = Self::Model>
    where
        Self: 'a;
    /// What the command prints at the end.
    type Report;

    fn options(&self) -> &RunOptions;
    /// The trainer's config section's schedule: seed, optimizer and step counts.
    fn schedule(&self) -> &TrainSchedule;
    /// Files and folders the run reads: `--out` may be none of them, nor inside or around one.
    fn inputs(&self) -> Vec<&Path>;
    /// Opens and checks every input; runs before the run folder is touched.
    fn open(&self, progress: &dyn Progress) -> Result<Self::Data, TrainError>;
    /// A freshly initialised model and the state of a run at step 0 (`device` already seeded).
    fn init(&self, data: &Self::Data, device: &Device) -> Result<(Self::Model, Self::State), TrainError>;
    /// Each setting that must not change across a resume, named, with whether `saved` and `now` agree.
    fn unchanged(saved: &Self::State, now: &Self::State) -> Vec<(String, bool)>;
    /// The loss over `data` for the shared loop (`device` is the training device).
    fn task<'a>(&'a self, data: &'a Self::Data, device: &Device) -> Self::Task<'a>;
    /// Writes the trained model and its manifest into the run folder and says what happened.
    fn export(
        &self,
        data: &Self::Data,
        model: &Self::Model,
        state: &Self::State,
        task: &Self::Task<'_>,
        end: RunEnd,
    ) -> Result<Self::Report, TrainError>;
}

/// Trains (or resumes) `trainer` in its run folder: the skeleton every `train-*` command runs.
pub fn train<T: Trainer>(trainer: &T, progress: &dyn Progress) -> Result<T::Report, TrainError> {
    let options = trainer.options();
    let out = &options.out;
    let run_dir = RunDir::check(out, options.resume, options.force, &trainer.inputs())?;
    let data = trainer.open(progress)?;
    options.cancel.check()?;
    let run = run_dir.begin()?;

    let schedule = trainer.schedule();
    let device = Device::flex().autodiff();
    // burn's generator is per backend and process-wide: one training per process is reproducible.
    device.seed(schedule.seed);
    let (mut model, mut state) = trainer.init(&data, &device)?;
    let mut optimizer =
        AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(schedule.clip_norm))).init();
    let mut resumed_from = None;
    if options.resume {
        (model, optimizer, state) =
            resume(out, model, optimizer, |saved| require_unchanged(out, &T::unchanged(saved, &state)))?;
        resumed_from = Some(state.position().step);
    }

    let mut task = trainer.task(&data, &device);
    let model =
        train_steps(&mut task, model, optimizer, &mut state, schedule, out, &options.cancel, progress, resumed_from)?;
    let end = RunEnd { steps: state.position().step, resumed_from };
    let report = trainer.export(&data, &model, &state, &task, end)?;
    run.finish()?;
    Ok(report)
}
