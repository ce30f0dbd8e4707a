//! Sentence vectors as a safetensors file (`storytool encode --format safetensors`): one `vectors` tensor,
//! a row per sentence, with the encoder's vocabulary hash in the metadata so a reader can tell which space
//! the rows live in.

use std::collections::HashMap;
use std::path::Path;

use super::Encoded;
use crate::util::atomic::write_file;
use crate::util::{Cause, PathError};

/// The `format` the metadata names.
pub const SENTENCE_VECTORS_FORMAT: &str = "storytool-sentence-vectors";

#[derive(Debug, thiserror::Error)]
pub enum VectorsFileError {
    #[error("cannot build the vectors tensor")]
    Build(#[source] Cause),
    #[error(transparent)]
    Write(#[from] PathError),
}

/// Writes `encoded` (each `dim` long) to `path` through a temporary file and a rename.
pub fn write_sentence_vectors(
    path: &Path,
    encoded: &[Encoded],
    dim: usize,
    vocabulary_hash: &str,
) -> Result<(), VectorsFileError> {
    let bytes: Vec<u8> =
        encoded.iter().flat_map(|encoded| encoded.vector.iter()).flat_map(|value| value.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![encoded.len(), dim], &bytes)
        .map_err(|error| VectorsFileError::Build(error.into()))?;
    let metadata = HashMap::from([
        ("vocabulary_hash".to_string(), vocabulary_hash.to_string()),
        ("format".to_string(), SENTENCE_VECTORS_FORMAT.to_string()),
    ]);
    let serialized = safetensors::tensor::serialize([("vectors", view)], Some(metadata))
        .map_err(|error| VectorsFileError::Build(error.into()))?;
    write_file(path, &serialized)?;
    Ok(())
}
