//! Small helpers shared by every stage: I/O errors that name their path, atomic writes, hashing and
//! cancellation.

pub mod atomic;
pub mod cancel;
pub mod hash;
pub mod swar;
pub mod tensor_file;
pub mod values;

use std::path::{Path, PathBuf};

/// The error beneath a failure, kept so the error chain shows it (`caused by: ...`): a library's error, or
/// our own words when the failure is one of our checks.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// `error` and each of its causes, joined by ": ": the whole story in one line, for places that show an
/// error as text (the web API's JSON, test assertions) rather than as `caused by:` lines.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Where the `scripts/fetch-*.sh` scripts put a downloaded file: `$XDG_CACHE_HOME/storytool/NAME`, else
/// `~/.cache/storytool/NAME` (`None` without either variable).
pub fn cached_file(name: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("storytool").join(name))
}

/// An I/O failure with the path and what was being done to it.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} `{path}`")]
pub struct PathError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl PathError {
    pub fn new(action: &'static str, path: &Path, source: std::io::Error) -> PathError {
        PathError { action, path: path.to_path_buf(), source }
    }
}

/// Adds the path to an `io::Result`.
pub trait IoContext<T> {
    fn path_context(self, action: &'static str, path: &Path) -> Result<T, PathError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn path_context(self, action: &'static str, path: &Path) -> Result<T, PathError> {
        self.map_err(|source| PathError::new(action, path, source))
    }
}
