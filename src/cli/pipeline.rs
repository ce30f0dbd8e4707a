//! `storytool pipeline`: every stage from raw data to stories, skipping what is up to date.

use std::sync::Mutex;

use anyhow::Context;
use clap::Args;
use storytool::pipeline::{PipelineReporter, StageStatus, run_pipeline};
use storytool::progress::Progress;

use super::device_args::DeviceArgs;
use super::progress_bar::Bar;
use super::{ConfigArgs, cancel_on_interrupt, cnn_weights, command_line};

/// Run every stage, from raw books and photos to stories: ingest, train-encoder, train-decoder,
/// compute-bias, extract-features (each image set), train-vse, build-caption-bank, then stories about the
/// configured photos. Inputs and the run folder come from the config's `[pipeline]` section. A stage whose
/// output matches its inputs and settings is skipped and a stopped training resumes, so running the
/// command again continues where it stopped.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    config: ConfigArgs,

    #[command(flatten)]
    device: DeviceArgs,
}

/// Prints stage lines and gives each stage a fresh bar.
struct Reporter {
    bar: Mutex<Bar>,
}

impl PipelineReporter for Reporter {
    fn stage(&self, name: &str, status: StageStatus) {
        let mut bar = self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match status {
            StageStatus::Skipped => eprintln!("== {name}: up to date, skipped"),
            StageStatus::Running => {
                *bar = Bar::counter();
                eprintln!("== {name}");
            }
            StageStatus::Resuming => {
                *bar = Bar::counter();
                eprintln!("== {name}: resuming from its checkpoint");
            }
            StageStatus::Done => bar.finish_now(),
        }
    }

    fn progress(&self) -> &dyn Progress {
        self
    }
}

impl Progress for Reporter {
    fn set_total(&self, total: u64) {
        self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).set_total(total);
    }
    fn advance(&self, amount: u64) {
        self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).advance(amount);
    }
    fn set_message(&self, message: &str) {
        self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).set_message(message);
    }
    fn finish(&self) {
        self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).finish();
    }
}

pub fn run(args: PipelineArgs) -> anyhow::Result<()> {
    let config = args.config.resolve(&[])?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let cnn = cnn_weights(config.pipeline.cnn.clone())?;
    let reporter = Reporter { bar: Mutex::new(Bar::counter()) };
    let devices = args.device.all(Some(&config))?;
    let stories = run_pipeline(&config, &cnn, command_line(), &cancel_on_interrupt(), &devices, &reporter)
        .context("the pipeline stopped; run it again to continue where it stopped")?;
    for story in &stories {
        println!("[{} / {}]\n{}\n", story.photo, story.story.genre, story.story.story);
    }
    eprintln!("stories written to {}", config.pipeline.run_dir.join("stories.json").display());
    Ok(())
}
