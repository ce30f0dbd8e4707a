//! From vectors to a story: style bias vectors (`bias`), the style shift and generator (`generate`), beam
//! search (`beam`), and the clean-up of decoded words into prose (`cleanup`).

pub mod beam;
pub mod bias;
pub mod cleanup;
pub mod generate;
