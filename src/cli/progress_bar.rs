//! An indicatif progress bar behind the library's `Progress` hook; invisible when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressStyle};
use storytool::progress::Progress;

/// A bar counting bytes or steps.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar for reading files: bytes done, total and rate.
    pub fn bytes() -> Bar {
        Bar::with_template("{msg:>14} [{bar:32}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
    }

    /// A bar for training: steps done and total, then the message (loss, perplexity, tokens/s).
    pub fn steps() -> Bar {
        Bar::with_template("[{bar:32}] {pos}/{len} steps, eta {eta} {msg}")
    }

    fn with_template(template: &str) -> Bar {
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template(template).expect("the template is valid").progress_chars("=> "));
        Bar { bar }
    }
}

impl Progress for Bar {
    fn set_total(&self, total: u64) {
        self.bar.set_length(total);
    }

    fn advance(&self, amount: u64) {
        self.bar.inc(amount);
    }

    fn set_message(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
