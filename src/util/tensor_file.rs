//! Named float tables in safetensors files: image features, caption banks, bias vectors. f32 in memory;
//! on disk f32, f16, or int8 with one f32 scale per row (`<name>.scale`): a quarter of the size, for tables
//! of unit vectors that are only compared by cosine (the committed demo caption banks), where the rounding
//! moves a cosine by about 1e-3.

use super::Cause;
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
    #[error("`{path}` is not a readable safetensors file")]
    Format {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("`{path}` has no 2-d float tensor `{name}`")]
    Missing { path: PathBuf, name: String },
}

/// How a table's numbers are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
    /// int8 with a per-row f32 scale.
    I8,
}

/// Writes tables atomically in `precision`.
pub fn write_tables(path: &Path, tables: &[&Table], precision: Precision) -> Result<(), PathError> {
    let mut entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for table in tables {
        let shape = vec![table.rows, table.columns];
        match precision {
            Precision::F32 => entries.push((
                table.name.clone(),
                Dtype::F32,
                shape,
                table.values.iter().flat_map(|value| value.to_le_bytes()).collect(),
            )),
            Precision::F16 => entries.push((
                table.name.clone(),
                Dtype::F16,
                shape,
                table.values.iter().flat_map(|&value| half::f16::from_f32(value).to_le_bytes()).collect(),
            )),
            Precision::I8 => {
                let mut scales = Vec::with_capacity(table.rows * 4);
                let mut quantised = Vec::with_capacity(table.values.len());
                for row in 0..table.rows {
                    let values = table.row(row);
                    let scale = values.iter().fold(0.0f32, |max, value| max.max(value.abs())) / 127.0;
                    scales.extend(scale.to_le_bytes());
                    let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
                    quantised
                        .extend(values.iter().map(|value| (value * inverse).round().clamp(-127.0, 127.0) as i8 as u8));
                }
                entries.push((table.name.clone(), Dtype::I8, shape, quantised));
                entries.push((format!("{}.scale", table.name), Dtype::F32, vec![table.rows, 1], scales));
            }
        }
    }
    let views: Vec<(String, TensorView)> = entries
        .iter()
        .map(|(name, dtype, shape, data)| {
            (name.clone(), TensorView::new(*dtype, shape.clone(), data).expect("shape matches data"))
        })
        .collect();
    let serialized = safetensors::serialize(views, None).expect("in-memory safetensors serialization");
    write_file(path, &serialized)
}

/// Reads the 2-d tensor `name` (f32, f16, or int8 with its `.scale`) as f32.
pub fn read_table(path: &Path, name: &str) -> Result<Table, TensorFileError> {
    let bytes = std::fs::read(path).map_err(|error| PathError::new("read", path, error))?;
    let format = |source: Cause| TensorFileError::Format { path: path.to_path_buf(), source };
    let tensors = SafeTensors::deserialize(&bytes).map_err(|error| format(error.into()))?;
    let missing = || TensorFileError::Missing { path: path.to_path_buf(), name: name.to_string() };
    let view = tensors.tensor(name).map_err(|_| missing())?;
    let &[rows, columns] = view.shape() else { return Err(missing()) };
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => view.data().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::I8 => {
            let scales = tensors.tensor(&format!("{name}.scale")).map_err(|_| missing())?;
            if scales.dtype() != Dtype::F32 || scales.shape() != [rows, 1] {
                return Err(format(Cause::from(format!("`{name}.scale` is not a [{rows}, 1] f32 tensor"))));
            }
            let scales: Vec<f32> =
                scales.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            view.data()
                .iter()
                .enumerate()
                .map(|(index, &byte)| f32::from(byte as i8) * scales[index / columns.max(1)])
                .collect()
        }
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
        write_tables(&dir.path().join("t.safetensors"), &[&a, &b], Precision::F32).unwrap();
        assert_eq!(read_table(&dir.path().join("t.safetensors"), "a").unwrap(), a);
        write_tables(&dir.path().join("h.safetensors"), &[&a], Precision::F16).unwrap();
        let half = read_table(&dir.path().join("h.safetensors"), "a").unwrap();
        assert!(half.values.iter().zip(&a.values).all(|(x, y)| (x - y).abs() < 1e-3));
        assert!(read_table(&dir.path().join("h.safetensors"), "b").is_err());
        write_tables(&dir.path().join("q.safetensors"), &[&a], Precision::I8).unwrap();
        let quantised = read_table(&dir.path().join("q.safetensors"), "a").unwrap();
        // Each row's error is at most half a step of its scale (max |value| / 127).
        for row in 0..2 {
            let step = a.row(row).iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
            for (x, y) in quantised.row(row).iter().zip(a.row(row)) {
                assert!((x - y).abs() <= step / 2.0 + 1e-6, "{x} vs {y}");
            }
        }
    }
}

/// Rewrites every f32 tensor of a safetensors file as f16, in place (atomically): model weights that ship
/// with the repository at half the size.
pub fn halve_float_tensors(path: &Path) -> Result<(), TensorFileError> {
    convert_floats(path, Dtype::F32, Dtype::F16).and_then(|bytes| Ok(write_file(path, &bytes)?))
}

/// The bytes of a safetensors file with every f16 tensor widened to f32 (what burn's loader expects of
/// an f32 model).
pub fn read_widened(path: &Path) -> Result<Vec<u8>, TensorFileError> {
    convert_floats(path, Dtype::F16, Dtype::F32)
}

fn convert_floats(path: &Path, from: Dtype, to: Dtype) -> Result<Vec<u8>, TensorFileError> {
    let bytes = std::fs::read(path).map_err(|error| PathError::new("read", path, error))?;
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|error| TensorFileError::Format { path: path.to_path_buf(), source: error.into() })?;
    let mut converted: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in tensors.tensors() {
        let data = if view.dtype() != from {
            view.data().to_vec()
        } else if from == Dtype::F32 {
            view.data()
                .chunks_exact(4)
                .flat_map(|b| half::f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes())
                .collect()
        } else {
            view.data()
                .chunks_exact(2)
                .flat_map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32().to_le_bytes())
                .collect()
        };
        let dtype = if view.dtype() == from { to } else { view.dtype() };
        converted.push((name, dtype, view.shape().to_vec(), data));
    }
    let views: Vec<(String, TensorView)> = converted
        .iter()
        .map(|(name, dtype, shape, data)| {
            (name.clone(), TensorView::new(*dtype, shape.clone(), data).expect("same shape"))
        })
        .collect();
    Ok(safetensors::serialize(views, None).expect("in-memory safetensors serialization"))
}
