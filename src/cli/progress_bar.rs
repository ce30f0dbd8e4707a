//! An indicatif progress bar behind the library's `Progress` hook; invisible when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressStyle};
use storytool::progress::Progress;

/// A bar counting bytes.
pub struct BytesBar {
    bar: ProgressBar,
}

impl BytesBar {
    pub fn new() -> BytesBar {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>14} [{bar:32}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        BytesBar { bar }
    }
}

impl Progress for BytesBar {
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
