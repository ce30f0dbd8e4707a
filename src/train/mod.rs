//! Training: the data the trainers share (sentence triples, length-bucketed batches), the run machinery
//! every trainer uses (`run`: checkpoints, resume, metrics), and the trainers themselves (`encoder`:
//! `storytool train-encoder`, `vse`: `storytool train-vse`).

pub mod batches;
pub mod captioner;
pub mod decoder;
pub mod encoder;
pub mod run;
pub mod run_dir;
pub mod triples;
pub mod vse;
pub mod vse_data;
