//! Training: the data the trainers share (sentence triples, length-bucketed batches), the run machinery
//! every trainer uses (`run`: checkpoints, resume, metrics; `run_dir`: the run folder; `trainer`: the one
//! skeleton every trainer runs in), and the trainers themselves, each a `trainer::Trainer` (`encoder`,
//! `decoder`, `vse`, `captioner`: `storytool train-*`).

pub mod batches;
pub mod captioner;
pub mod data_parallel;
pub mod decoder;
pub mod encoder;
pub mod lm_decoder;
pub mod run;
pub mod run_dir;
pub mod trainer;
pub mod triples;
pub mod vse;
