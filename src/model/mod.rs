//! burn modules. Models never read files: loading and saving live with the stages that own them.

pub mod captioner;
pub mod skip_thought;
pub mod story_decoder;
pub mod vse;
