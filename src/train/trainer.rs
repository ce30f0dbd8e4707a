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
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::AdamConfig;
use burn::tensor::{Device, Tensor};
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
    /// Where to train: one device, or several of one backend for data-parallel training (each computes
    /// the loss of a share of every batch; the first holds the model and the optimizer). Never empty.
    pub devices: Vec<Device>,
}

impl RunOptions {
    /// A fresh run into `out` on the CPU with no command line recorded and no way to cancel it (tests, the pipeline).
    pub fn new(out: impl Into<PathBuf>) -> RunOptions {
        RunOptions {
            out: out.into(),
            resume: false,
            force: false,
            command: Vec::new(),
            cancel: CancelFlag::default(),
            devices: vec![Device::flex()],
        }
    }

    /// These options training on `devices` instead.
    pub fn on(mut self, devices: Vec<Device>) -> RunOptions {
        assert!(!devices.is_empty(), "training needs a device");
        self.devices = devices;
        self
    }

    /// The device that holds the model and the optimizer (without autodiff).
    pub fn main_device(&self) -> &Device {
        &self.devices[0]
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
    /// Whether its task splits batches into shares ([`super::run::TrainingTask::share`]), so that it can
    /// train on several devices at once.
    const DATA_PARALLEL: bool = false;

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

/// Draws every lazily initialised weight of `model` now, in the module's order. burn initialises a parameter
/// when it is first read, so the draws would otherwise follow the first forward pass; data-parallel training
/// copies every parameter to its replicas before that, and would start from other weights than one device.
pub(crate) fn initialise_now<M: Module>(model: &M) {
    struct Read;
    impl ModuleVisitor for Read {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            drop(param.val());
        }
    }
    model.visit(&mut Read);
}

/// Trains (or resumes) `trainer` in its run folder: the skeleton every `train-*` command runs.
pub fn train<T: Trainer>(trainer: &T, progress: &dyn Progress) -> Result<T::Report, TrainError>
where
    T::Model: Send,
{
    let options = trainer.options();
    let out = &options.out;
    if options.devices.len() > 1 && !T::DATA_PARALLEL {
        return Err(TrainError::Input(format!(
            "this model trains on one device, and {} were given (data-parallel training is for `train-encoder`)\n\nhint: pass one device, e.g. `--device cpu` or `--device cuda:0`",
            options.devices.len()
        )));
    }
    let run_dir = RunDir::check(out, options.resume, options.force, &trainer.inputs())?;
    let data = trainer.open(progress)?;
    options.cancel.check()?;
    let run = run_dir.begin()?;

    let schedule = trainer.schedule();
    let devices: Vec<Device> = options.devices.iter().map(|device| device.clone().autodiff()).collect();
    let device = devices[0].clone();
    // burn's generator is per backend and process-wide: one training per process is reproducible.
    device.seed(schedule.seed);
    let (mut model, mut state) = trainer.init(&data, &device)?;
    initialise_now(&model);
    let mut optimizer =
        AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(schedule.clip_norm))).init();
    let mut resumed_from = None;
    if options.resume {
        (model, optimizer, state) =
            resume(out, model, optimizer, |saved| require_unchanged(out, &T::unchanged(saved, &state)))?;
        resumed_from = Some(state.position().step);
    }

    let mut task = trainer.task(&data, &device);
    let model = train_steps(
        &mut task,
        model,
        optimizer,
        &mut state,
        schedule,
        out,
        &options.cancel,
        progress,
        resumed_from,
        &devices,
    )?;
    let end = RunEnd { steps: state.position().step, resumed_from };
    let report = trainer.export(&data, &model, &state, &task, end)?;
    run.finish()?;
    Ok(report)
}
