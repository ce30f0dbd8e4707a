//! Word vectors from other tools (word2vec, GloVe, fastText, `.npy` tables), read one word at a time so
//! that multi-gigabyte files never have to fit in memory. Used by `storytool expand-vocab`.

pub mod expand;
pub mod readers;
pub mod regression;

pub use readers::{VectorFormat, VectorsError, WordVectorReader, open_vectors};
