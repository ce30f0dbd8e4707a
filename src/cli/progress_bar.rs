//! An indicatif progress bar behind the library's `Progress` hook. When stderr is not a terminal (CI logs,
//! `nohup`) the bar is invisible, so status messages are printed as plain lines instead, at most one every
//! [`LOG_INTERVAL`].

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use storytool::progress::Progress;

/// The least time between two plain status lines when stderr is not a terminal.
const LOG_INTERVAL: Duration = Duration::from_secs(30);

/// A bar counting bytes or steps.
pub struct Bar {
    bar: ProgressBar,
    /// When the last plain status line was printed; `None` on a terminal, where the bar shows instead.
    last_line: Option<Mutex<Option<Instant>>>,
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

    /// A bar for work of any unit: done, total, eta.
    pub fn counter() -> Bar {
        Bar::with_template("[{bar:32}] {pos}/{len} eta {eta} {msg}")
    }

    /// A bar counting items (images, captions): done, total, rate.
    pub fn items(unit: &str) -> Bar {
        Bar::with_template(&format!("[{{bar:32}}] {{pos}}/{{len}} {unit}, {{per_sec}}, eta {{eta}} {{msg}}"))
    }

    fn with_template(template: &str) -> Bar {
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template(template).expect("the template is valid").progress_chars("=> "));
        let last_line = (!std::io::stderr().is_terminal()).then(|| Mutex::new(None));
        Bar { bar, last_line }
    }
}

impl Bar {
    /// Clears the bar now (for jobs that report messages only).
    pub fn finish_now(&self) {
        self.bar.finish_and_clear();
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
        if let Some(last_line) = &self.last_line {
            let mut last_line = last_line.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if last_line.is_none_or(|last| last.elapsed() >= LOG_INTERVAL) {
                match self.bar.length() {
                    Some(total) if total > 0 => eprintln!("[{}/{total}] {message}", self.bar.position()),
                    _ => eprintln!("{message}"),
                }
                *last_line = Some(Instant::now());
            }
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
