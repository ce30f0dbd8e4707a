//! Named float tables in safetensors files: image features, caption banks, bias vectors. f32 in memory;
//! f16 on disk where size matters more than the last digits (committed demo artifacts).

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::PathError;
use super::atomic::write_file;

/// A named row-major table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub rows: usize,
    pub columns: usize,
    pub values: Vec<f32>,
}

impl Table {
    pub fn new(name: impl Into<String>, rows: usize, columns: usize, values: Vec<f32>) -> Table {
        assert_eq!(rows * columns, values.len(), "table shape and values disagree");
        Table { name: name.into(), rows, columns, values }
    }

    pub fn row(&self, index: usize) -> &[f32] {
        &self.values[index * self.columns..(index + 1) * self.columns]
    }
}

/// Why a tensor file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("`{path}` is not a readable safetensors file: {message}")]
    Format { path: PathBuf, message: String },
    #[error("`{path}` has no 2-d float tensor `{name}`")]
    Missing { path: PathBuf, name: String },
}

/// Writes tables atomically, each as f16 (`half`) or f32.
pub fn write_tables(path: &Path, tables: &[&Table], half: bool) -> Result<(), PathError> {
    let bytes: Vec<Vec<u8>> = tables
        .iter()
        .map(|table| {
            if half {
                table.values.iter().flat_map(|&value| half::f16::from_f32(value).to_le_bytes()).collect()
            } else {
                table.values.iter().flat_map(|value| value.to_le_bytes()).collect()
            }
        })
        .collect();
    let dtype = if half { Dtype::F16 } else { Dtype::F32 };
    let views: Vec<(String, TensorView)> = tables
        .iter()
        .zip(&bytes)
        .map(|(table, data)| {
            let view = TensorView::new(dtype, vec![table.rows, table.columns], data).expect("shape matches data");
            (table.name.clone(), view)
        })
        .collect();
    let serialized = safetensors::serialize(views, None).expect("in-memory safetensors serialization");
    write_file(path, &serialized)
}

/// Reads the 2-d f16 or f32 tensor `name` as f32.
pub fn read_table(path: &Path, name: &str) -> Result<Table, TensorFileError> {
    let bytes = std::fs::read(path).map_err(|error| PathError::new("read", path, error))?;
    let format = |message: String| TensorFileError::Format { path: path.to_path_buf(), message };
    let tensors = SafeTensors::deserialize(&bytes).map_err(|error| format(error.to_string()))?;
    let missing = || TensorFileError::Missing { path: path.to_path_buf(), name: name.to_string() };
    let view = tensors.tensor(name).map_err(|_| missing())?;
    let &[rows, columns] = view.shape() else { return Err(missing()) };
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => view.data().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        _ => return Err(missing()),
    };
    Ok(Table::new(name, rows, columns, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip_in_f32_and_f16() {
        let dir = tempfile::tempdir().unwrap();
        let a = Table::new("a", 2, 3, vec![1.0, -2.5, 3.25, 0.0, 1e-3, 7.0]);
        let b = Table::new("b", 1, 1, vec![0.5]);
        write_tables(&dir.path().join("t.safetensors"), &[&a, &b], false).unwrap();
        assert_eq!(read_table(&dir.path().join("t.safetensors"), "a").unwrap(), a);
        write_tables(&dir.path().join("h.safetensors"), &[&a], true).unwrap();
        let half = read_table(&dir.path().join("h.safetensors"), "a").unwrap();
        assert!(half.values.iter().zip(&a.values).all(|(x, y)| (x - y).abs() < 1e-3));
        assert!(read_table(&dir.path().join("h.safetensors"), "b").is_err());
    }
}
