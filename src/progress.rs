//! A progress hook so that long library work can report progress without the library printing.
//!
//! The CLI passes an implementation backed by an indicatif bar; tests and library users pass [`NoProgress`].

/// Receives progress of one long job, measured in units the job chooses (bytes, steps, images).
pub trait Progress: Sync {
    /// The job learned its total size.
    fn set_total(&self, total: u64);
    /// `amount` more units are done.
    fn advance(&self, amount: u64);
    /// A short description of what is being done now.
    fn set_message(&self, message: &str);
    /// The job has finished.
    fn finish(&self);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn set_total(&self, _total: u64) {}
    fn advance(&self, _amount: u64) {}
    fn set_message(&self, _message: &str) {}
    fn finish(&self) {}
}
