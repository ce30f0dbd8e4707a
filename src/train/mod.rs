//! Training: the data the trainers share (sentence triples, length-bucketed batches) and the trainers
//! themselves (`encoder`: `storytool train-encoder`).

pub mod batches;
pub mod encoder;
pub mod triples;
