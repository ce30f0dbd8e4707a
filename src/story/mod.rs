//! From vectors to a story: style bias vectors (`bias`), the style shift and generator (`generate`, with beam
//! search from [`crate::model::beam`]), and the clean-up of decoded words into prose (`cleanup`).

pub mod bias;
pub mod cleanup;
pub mod decoder;
pub mod generate;
pub mod genre_words;
pub mod gru_writer;
pub mod lm_decoder;
pub mod lm_writer;
pub mod passages;
pub mod writer;
