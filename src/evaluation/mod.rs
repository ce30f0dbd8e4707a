//! `storytool evaluate decoder` and `evaluate story`: does the story decoder use its input, and does a story
//! follow its photo and its genre? Every figure is reported beside what chance or a shuffled input gives,
//! because outputs that merely differ prove nothing.
//!
//! `books` reads held-out novels with a model's vocabulary, `text` holds the text measures (content words,
//! TF-IDF relevance, distinct-n, openings, overlap), `genre` the naive Bayes genre classifier, `decoder`
//! and `story` the two evaluations.

pub mod books;
pub mod decoder;
pub mod device_parity;
pub mod fluency;
pub mod genre;
pub mod lm_decoder;
pub mod story;
pub mod text;

use crate::captions::DatasetError;
use crate::corpus::CorpusError;
use crate::encoder::EncoderError;
use crate::story::decoder::DecoderError;
use crate::story::generate::GenerateError;
use crate::vision::ImageError;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    #[error(transparent)]
    Books(#[from] books::BooksError),
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Decoder(#[from] DecoderError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Nothing to evaluate on: no photos in the split, no held-out book of a genre...
    #[error("{0}")]
    NothingToEvaluate(String),
    #[error("{what} do not match: `{a}` has {a_value}, `{b}` has {b_value}")]
    Mismatch { what: &'static str, a: String, a_value: String, b: String, b_value: String },
}
