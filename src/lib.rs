//! storytool: turn a picture into a short story in a literary genre, and train every model that does it.
//!
//! This crate is the library behind the `storytool` binary. Each pipeline stage lives in its own module and
//! reads the artifacts of the stages before it from disk; see `ARCHITECTURE.md` for the map. Nothing in the
//! library prints: progress is reported through the [`progress::Progress`] hook and results are returned.

pub mod captioner;
pub mod captions;
pub mod config;
pub mod corpus;
pub mod device;
pub mod encoder;
pub mod evaluation;
pub mod features;
pub mod gguf;
pub mod language_model;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod retrieval;
pub mod serve;
pub mod story;
pub mod text;
pub mod train;
pub mod util;
pub mod vectors;
pub mod vision;

/// The version of this build, recorded in every artifact manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision this binary was built from, if the build could see one.
pub const GIT_REVISION: Option<&str> = option_env!("STORYTOOL_GIT_REVISION");
