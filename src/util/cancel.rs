//! A flag that asks long work to stop cleanly: set by the CLI on Ctrl-C or SIGTERM, polled by the library.
//!
//! Long jobs check it between units of work and return an "interrupted" error, so that destructors run:
//! staging folders are removed and nothing half-written is left behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared between the signal handler and the work it may stop.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> CancelFlag {
        CancelFlag::default()
    }

    /// Asks the work to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether stopping was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Two flags are equal when they are the same flag (settings holding one stay comparable).
impl PartialEq for CancelFlag {
    fn eq(&self, other: &CancelFlag) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The error a job returns when it stopped because its [`CancelFlag`] was set; the CLI exits with 130 for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

impl CancelFlag {
    /// `Err(Interrupted)` once stopping was asked for.
    pub fn check(&self) -> Result<(), Interrupted> {
        if self.is_cancelled() { Err(Interrupted) } else { Ok(()) }
    }
}
