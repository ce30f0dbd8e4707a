//! What the trainers share. So far: the skip-thought training data (sentence triples and length-bucketed
//! batches); the training loop, checkpoints and metrics come with `storytool train-encoder`.

pub mod batches;
pub mod encoder;
pub mod triples;
