//! A GGUF file (versions 2 and 3), memory-mapped: its metadata and its table of tensors, with each
//! tensor's bytes borrowed from the map.
//!
//! The layout: `GGUF`, a version, the tensor and metadata counts, the metadata (key, type, value; arrays
//! nest), the tensor table (name, dimensions with the fastest first, type, offset), then the tensor data
//! from the next multiple of `general.alignment` (32 when absent). Every count is checked against the bytes
//! left before a vector is sized by it, so a corrupt header is an error naming the file, never a huge
//! allocation, and every tensor's bytes must lie inside the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::util::{IoContext, PathError};

/// The tensor types of GGML, by their number in the file. Only `F32`, `F16`, `Q4_1` and `Q8_0` can be
/// read (`dequantize`); the others are named so that the error says which one a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    Q4_1,
    Q8_0,
    /// Any other GGML type: its number and, where known, its name.
    Other(u32),
}

/// GGML's names of its tensor types, by number (ggml.h), for error messages.
const GGML_TYPE_NAMES: [&str; 40] = [
    "F32",
    "F16",
    "Q4_0",
    "Q4_1",
    "Q4_2",
    "Q4_3",
    "Q5_0",
    "Q5_1",
    "Q8_0",
    "Q8_1",
    "Q2_K",
    "Q3_K",
    "Q4_K",
    "Q5_K",
    "Q6_K",
    "Q8_K",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ3_XXS",
    "IQ1_S",
    "IQ4_NL",
    "IQ3_S",
    "IQ2_S",
    "IQ4_XS",
    "I8",
    "I16",
    "I32",
    "I64",
    "F64",
    "IQ1_M",
    "BF16",
    "Q4_0_4_4",
    "Q4_0_4_8",
    "Q4_0_8_8",
    "TQ1_0",
    "TQ2_0",
    "IQ4_NL_4_4",
    "IQ4_NL_4_8",
    "IQ4_NL_8_8",
    "MXFP4",
];

impl TensorType {
    fn from_id(id: u32) -> TensorType {
        match id {
            0 => TensorType::F32,
            1 => TensorType::F16,
            3 => TensorType::Q4_1,
            8 => TensorType::Q8_0,
            other => TensorType::Other(other),
        }
    }

    pub fn name(self) -> String {
        match self {
            TensorType::F32 => "F32".into(),
            TensorType::F16 => "F16".into(),
            TensorType::Q4_1 => "Q4_1".into(),
            TensorType::Q8_0 => "Q8_0".into(),
            TensorType::Other(id) => match GGML_TYPE_NAMES.get(id as usize) {
                Some(name) => format!("{name} (type {id})"),
                None => format!("unknown type {id}"),
            },
        }
    }

    /// Values per block and bytes per block, for the readable types.
    pub fn block(self) -> Option<(usize, usize)> {
        match self {
            TensorType::F32 => Some((1, 4)),
            TensorType::F16 => Some((1, 2)),
            // f16 scale, f16 minimum, 32 four-bit values.
            TensorType::Q4_1 => Some((32, 20)),
            // f16 scale, 32 signed bytes.
            TensorType::Q8_0 => Some((32, 34)),
            TensorType::Other(_) => None,
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<MetadataValue>),
}

impl MetadataValue {
    /// The value as an unsigned integer, whatever integer type the file chose.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(v.into()),
            MetadataValue::U16(v) => Some(v.into()),
            MetadataValue::U32(v) => Some(v.into()),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(v.into()),
            MetadataValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[MetadataValue]> {
        match self {
            MetadataValue::Array(items) => Some(items),
            _ => None,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            MetadataValue::U8(_) => "u8",
            MetadataValue::I8(_) => "i8",
            MetadataValue::U16(_) => "u16",
            MetadataValue::I16(_) => "i16",
            MetadataValue::U32(_) => "u32",
            MetadataValue::I32(_) => "i32",
            MetadataValue::U64(_) => "u64",
            MetadataValue::I64(_) => "i64",
            MetadataValue::F32(_) => "f32",
            MetadataValue::F64(_) => "f64",
            MetadataValue::Bool(_) => "bool",
            MetadataValue::String(_) => "string",
            MetadataValue::Array(_) => "array",
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions as GGUF lists them: the fastest-varying first (a matrix of `rows` rows of `columns` values
    /// is `[columns, rows]`).
    pub dims: Vec<usize>,
    pub tensor_type: TensorType,
    /// Where the tensor's bytes start, from the start of the file.
    pub start: usize,
    /// How many bytes it holds (0 for a type storytool cannot read: its size is unknown).
    pub byte_len: usize,
}

impl TensorInfo {
    pub fn element_count(&self) -> usize {
        self.dims.iter().product()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("`{path}` is not a GGUF file: it starts with {found:?}, not \"GGUF\"")]
    NotGguf { path: PathBuf, found: String },
    #[error("`{path}` is GGUF version {version}; storytool reads versions 2 and 3")]
    Version { path: PathBuf, version: u32 },
    #[error("`{path}` is truncated: {what} at byte {offset} runs past its end ({len} bytes)")]
    Truncated { path: PathBuf, what: String, offset: usize, len: usize },
    #[error("`{path}` is malformed: {what}")]
    Malformed { path: PathBuf, what: String },
    #[error("`{path}`: tensor `{name}` is {type_name}, which storytool cannot read (it reads F32, F16, Q4_1 and Q8_0)")]
    UnsupportedType { path: PathBuf, name: String, type_name: String },
    #[error("`{path}` has no tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    #[error("`{path}`: tensor `{name}` has dimensions {found:?}, expected {expected:?} (fastest first)")]
    WrongShape { path: PathBuf, name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("`{path}` has no metadata key `{key}`")]
    MissingKey { path: PathBuf, key: String },
    #[error("`{path}`: metadata key `{key}` is {found}, expected {expected}")]
    WrongKeyType { path: PathBuf, key: String, expected: &'static str, found: &'static str },
}

/// A GGUF file opened and checked: metadata and tensor table parsed, tensor bytes still in the map.
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    pub version: u32,
    pub metadata: BTreeMap<String, MetadataValue>,
    pub tensors: Vec<TensorInfo>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// Arrays nest at most this deep (GGUF files in use nest none); a deeper file is refused instead of
/// recursing without bound.
const MAX_ARRAY_DEPTH: usize = 4;
/// Tensors have at most four dimensions in GGML.
const MAX_DIMS: usize = 4;

impl GgufFile {
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let file = std::fs::File::open(path).path_context("open", path)?;
        // SAFETY: the map is read-only and lives as long as `GgufFile`; a file truncated by another
        // process while mapped is outside what any reader of a model file can guard against.
        let map = unsafe { Mmap::map(&file) }.path_context("memory-map", path)?;
        let mut cursor = Cursor { path, bytes: &map, at: 0 };
        let magic = cursor.take(4, "the magic number").map(<[u8]>::to_vec);
        if magic.as_deref().ok() != Some(b"GGUF".as_slice()) {
            let found = String::from_utf8_lossy(&map[..map.len().min(4)]).into_owned();
            return Err(GgufError::NotGguf { path: path.to_path_buf(), found });
        }
        let version = cursor.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version { path: path.to_path_buf(), version });
        }
        let tensor_count = cursor.u64("the tensor count")?;
        let metadata_count = cursor.u64("the metadata count")?;
        let mut metadata = BTreeMap::new();
        // A key and its type take at least 12 bytes, which bounds the count by the bytes left.
        for _ in 0..cursor.bounded_count(metadata_count, 12, "metadata entries")? {
            let key = cursor.string("a metadata key")?;
            let value_type = cursor.u32("a metadata type")?;
            let value = cursor.value(value_type, &key, 0)?;
            metadata.insert(key, value);
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(value) => match value.as_u64() {
                Some(alignment) if alignment.is_power_of_two() && alignment <= 1 << 20 => alignment as usize,
                _ => return Err(cursor.malformed(format!("`general.alignment` is {value:?}, not a power of two"))),
            },
        };
        let mut raw_tensors = Vec::new();
        // Name length, dimension count, one dimension, type and offset: at least 28 bytes a tensor.
        for _ in 0..cursor.bounded_count(tensor_count, 28, "tensors")? {
            let name = cursor.string("a tensor name")?;
            let n_dims = cursor.u32("a tensor's dimension count")? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(cursor.malformed(format!("tensor `{name}` has {n_dims} dimensions (1 to 4 allowed)")));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let dim = cursor.u64("a tensor dimension")?;
                dims.push(usize::try_from(dim).map_err(|_| cursor.malformed(format!("tensor `{name}` is too large")))?);
            }
            let tensor_type = TensorType::from_id(cursor.u32("a tensor type")?);
            let offset = cursor.u64("a tensor offset")?;
            raw_tensors.push((name, dims, tensor_type, offset));
        }
        let data_start = cursor.at.div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw_tensors.len());
        for (name, dims, tensor_type, offset) in raw_tensors {
            let info = locate(path, map.len(), data_start, name, dims, tensor_type, offset)?;
            tensors.push(info);
        }
        let mut names: Vec<&str> = tensors.iter().map(|tensor| tensor.name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(cursor.malformed(format!("tensor `{}` is listed twice", pair[0])));
        }
        Ok(GgufFile { path: path.to_path_buf(), map, version, metadata, tensors })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file, e.g. to hash it.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensors
            .iter()
            .find(|tensor| tensor.name == name)
            .ok_or_else(|| GgufError::MissingTensor { path: self.path.clone(), name: name.to_string() })
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.tensors.iter().any(|tensor| tensor.name == name)
    }

    /// The bytes of a tensor, refusing a type storytool cannot read.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Result<&[u8], GgufError> {
        if info.tensor_type.block().is_none() {
            return Err(GgufError::UnsupportedType {
                path: self.path.clone(),
                name: info.name.clone(),
                type_name: info.tensor_type.name(),
            });
        }
        Ok(&self.map[info.start..info.start + info.byte_len])
    }

    pub fn value(&self, key: &str) -> Result<&MetadataValue, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::MissingKey { path: self.path.clone(), key: key.to_string() })
    }

    pub fn value_u64(&self, key: &str) -> Result<u64, GgufError> {
        let value = self.value(key)?;
        value.as_u64().ok_or_else(|| self.wrong_type(key, "an unsigned integer", value))
    }

    pub fn value_f64(&self, key: &str) -> Result<f64, GgufError> {
        let value = self.value(key)?;
        value.as_f64().ok_or_else(|| self.wrong_type(key, "a number", value))
    }

    pub fn value_str(&self, key: &str) -> Result<&str, GgufError> {
        let value = self.value(key)?;
        value.as_str().ok_or_else(|| self.wrong_type(key, "a string", value))
    }

    pub fn value_array(&self, key: &str) -> Result<&[MetadataValue], GgufError> {
        let value = self.value(key)?;
        value.as_array().ok_or_else(|| self.wrong_type(key, "an array", value))
    }

    pub fn wrong_type(&self, key: &str, expected: &'static str, found: &MetadataValue) -> GgufError {
        GgufError::WrongKeyType { path: self.path.clone(), key: key.to_string(), expected, found: found.type_name() }
    }

    pub fn malformed(&self, what: String) -> GgufError {
        GgufError::Malformed { path: self.path.clone(), what }
    }
}

/// A tensor's place in the file, checked to lie inside it.
fn locate(
    path: &Path,
    file_len: usize,
    data_start: usize,
    name: String,
    dims: Vec<usize>,
    tensor_type: TensorType,
    offset: u64,
) -> Result<TensorInfo, GgufError> {
    let malformed = |what: String| GgufError::Malformed { path: path.to_path_buf(), what };
    let elements = dims.iter().try_fold(1usize, |product, &dim| product.checked_mul(dim));
    let Some(elements) = elements.filter(|&count| count > 0) else {
        return Err(malformed(format!("tensor `{name}` has dimensions {dims:?}")));
    };
    let start = usize::try_from(offset)
        .ok()
        .and_then(|offset| data_start.checked_add(offset))
        .ok_or_else(|| malformed(format!("tensor `{name}` has offset {offset}")))?;
    let byte_len = match tensor_type.block() {
        None => 0,
        Some((per_block, block_bytes)) => {
            if dims[0] % per_block != 0 {
                return Err(malformed(format!(
                    "tensor `{name}` is {} with rows of {} values, not a multiple of its block of {per_block}",
                    tensor_type.name(),
                    dims[0]
                )));
            }
            (elements / per_block)
                .checked_mul(block_bytes)
                .ok_or_else(|| malformed(format!("tensor `{name}` is too large")))?
        }
    };
    if start.checked_add(byte_len).is_none_or(|end| end > file_len) {
        return Err(GgufError::Truncated {
            path: path.to_path_buf(),
            what: format!("tensor `{name}` ({byte_len} bytes)"),
            offset: start,
            len: file_len,
        });
    }
    Ok(TensorInfo { name, dims, tensor_type, start, byte_len })
}

/// Reads the header forward, every read checked against the end of the file.
struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, count: usize, what: &str) -> Result<&'a [u8], GgufError> {
        let end = self.at.checked_add(count).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(GgufError::Truncated {
                path: self.path.to_path_buf(),
                what: what.to_string(),
                offset: self.at,
                len: self.bytes.len(),
            });
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let slice = self.take(N, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn malformed(&self, what: String) -> GgufError {
        GgufError::Malformed { path: self.path.to_path_buf(), what }
    }

    /// `count` items of at least `min_bytes` each must fit in the bytes left.
    fn bounded_count(&self, count: u64, min_bytes: usize, what: &str) -> Result<usize, GgufError> {
        let left = (self.bytes.len() - self.at) / min_bytes.max(1);
        match usize::try_from(count) {
            Ok(count) if count <= left => Ok(count),
            _ => Err(GgufError::Truncated {
                path: self.path.to_path_buf(),
                what: format!("{count} {what}"),
                offset: self.at,
                len: self.bytes.len(),
            }),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        let len = self.bounded_count(len, 1, "string bytes")?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.malformed(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, value_type: u32, key: &str, depth: usize) -> Result<MetadataValue, GgufError> {
        let what = format!("the value of `{key}`");
        Ok(match value_type {
            0 => MetadataValue::U8(self.array::<1>(&what)?[0]),
            1 => MetadataValue::I8(self.array::<1>(&what)?[0] as i8),
            2 => MetadataValue::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => MetadataValue::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => MetadataValue::U32(u32::from_le_bytes(self.array(&what)?)),
            5 => MetadataValue::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => MetadataValue::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => match self.array::<1>(&what)?[0] {
                0 => MetadataValue::Bool(false),
                1 => MetadataValue::Bool(true),
                other => return Err(self.malformed(format!("`{key}` is a bool of value {other}"))),
            },
            8 => MetadataValue::String(self.string(&what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.malformed(format!("`{key}` nests arrays deeper than {MAX_ARRAY_DEPTH}")));
                }
                let item_type = self.u32(&what)?;
                let count = self.u64(&what)?;
                let count = self.bounded_count(count, min_value_bytes(item_type), "array items")?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(item_type, key, depth + 1)?);
                }
                MetadataValue::Array(items)
            }
            10 => MetadataValue::U64(u64::from_le_bytes(self.array(&what)?)),
            11 => MetadataValue::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => MetadataValue::F64(f64::from_le_bytes(self.array(&what)?)),
            other => return Err(self.malformed(format!("`{key}` has value type {other} (0 to 12 exist)"))),
        })
    }
}

/// The fewest bytes a value of a type takes in the file (a string's length, an array's type and count).
fn min_value_bytes(value_type: u32) -> usize {
    match value_type {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => 1,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes GGUF files for tests: metadata and tensors given as raw bytes.
    #[derive(Default)]
    pub struct GgufWriter {
        pub metadata: Vec<(String, u32, Vec<u8>)>,
        pub tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
    }

    pub fn gguf_string(text: &str) -> Vec<u8> {
        let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes
    }

    impl GgufWriter {
        pub fn key_u32(&mut self, key: &str, value: u32) -> &mut Self {
            self.metadata.push((key.into(), 4, value.to_le_bytes().to_vec()));
            self
        }
        pub fn key_f32(&mut self, key: &str, value: f32) -> &mut Self {
            self.metadata.push((key.into(), 6, value.to_le_bytes().to_vec()));
            self
        }
        pub fn key_string(&mut self, key: &str, value: &str) -> &mut Self {
            self.metadata.push((key.into(), 8, gguf_string(value)));
            self
        }
        pub fn key_strings(&mut self, key: &str, values: &[&str]) -> &mut Self {
            let mut bytes = 8u32.to_le_bytes().to_vec();
            bytes.extend_from_slice(&(values.len() as u64).to_le_bytes());
            for value in values {
                bytes.extend(gguf_string(value));
            }
            self.metadata.push((key.into(), 9, bytes));
            self
        }
        pub fn tensor(&mut self, name: &str, dims: &[u64], tensor_type: u32, data: Vec<u8>) -> &mut Self {
            self.tensors.push((name.into(), dims.to_vec(), tensor_type, data));
            self
        }
        pub fn f32_tensor(&mut self, name: &str, dims: &[u64], values: &[f32]) -> &mut Self {
            let data = values.iter().flat_map(|value| value.to_le_bytes()).collect();
            self.tensor(name, dims, 0, data)
        }

        pub fn bytes(&self) -> Vec<u8> {
            let mut out = b"GGUF".to_vec();
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
            out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
            for (key, value_type, value) in &self.metadata {
                out.extend(gguf_string(key));
                out.extend_from_slice(&value_type.to_le_bytes());
                out.extend_from_slice(value);
            }
            let mut offset = 0u64;
            let mut offsets = Vec::new();
            for (name, dims, tensor_type, data) in &self.tensors {
                out.extend(gguf_string(name));
                out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
                for dim in dims {
                    out.extend_from_slice(&dim.to_le_bytes());
                }
                out.extend_from_slice(&tensor_type.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                offsets.push(offset);
                offset = (offset + data.len() as u64).div_ceil(32) * 32;
            }
            let data_start = out.len().div_ceil(32) * 32;
            out.resize(data_start, 0);
            for ((_, _, _, data), offset) in self.tensors.iter().zip(offsets) {
                out.resize(data_start + offset as usize, 0);
                out.extend_from_slice(data);
            }
            out
        }
    }

    fn open_bytes(bytes: &[u8]) -> Result<GgufFile, GgufError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.gguf");
        std::fs::write(&path, bytes).unwrap();
        GgufFile::open(&path)
    }

    fn sample() -> GgufWriter {
        let mut writer = GgufWriter::default();
        writer
            .key_string("general.architecture", "llama")
            .key_u32("llama.block_count", 2)
            .key_f32("llama.rope.freq_base", 10000.0)
            .key_strings("tokenizer.ggml.tokens", &["a", "b", "ab"])
            .f32_tensor("norm.weight", &[4], &[1.0, 2.0, 3.0, 4.0])
            .f32_tensor("matrix.weight", &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        writer
    }

    #[test]
    fn reads_metadata_and_tensors() {
        let file = open_bytes(&sample().bytes()).unwrap();
        assert_eq!(file.version, 3);
        assert_eq!(file.value_str("general.architecture").unwrap(), "llama");
        assert_eq!(file.value_u64("llama.block_count").unwrap(), 2);
        assert_eq!(file.value_f64("llama.rope.freq_base").unwrap(), 10000.0);
        assert_eq!(file.value_array("tokenizer.ggml.tokens").unwrap().len(), 3);
        let matrix = file.tensor("matrix.weight").unwrap();
        assert_eq!(matrix.dims, vec![2, 3]);
        let bytes = file.tensor_bytes(matrix).unwrap();
        assert_eq!(f32::from_le_bytes(bytes[20..24].try_into().unwrap()), 5.0);
        let wrong = file.value_u64("general.architecture").unwrap_err().to_string();
        assert!(wrong.contains("`general.architecture` is string, expected an unsigned integer"), "{wrong}");
        let missing = file.tensor("output.weight").unwrap_err().to_string();
        assert!(missing.contains("has no tensor `output.weight`"), "{missing}");
    }

    #[test]
    fn refuses_what_is_not_gguf() {
        let error = open_bytes(b"PK\x03\x04 a zip file").unwrap_err().to_string();
        assert!(error.contains("is not a GGUF file: it starts with \"PK"), "{error}");
        let error = open_bytes(b"GG").unwrap_err().to_string();
        assert!(error.contains("is not a GGUF file"), "{error}");
        let mut bytes = sample().bytes();
        bytes[4] = 1;
        let error = open_bytes(&bytes).unwrap_err().to_string();
        assert!(error.contains("GGUF version 1; storytool reads versions 2 and 3"), "{error}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().bytes();
        for len in 0..bytes.len() {
            let error = open_bytes(&bytes[..len]).unwrap_err().to_string();
            assert!(error.contains("truncated") || error.contains("not a GGUF file"), "{len}: {error}");
        }
    }

    #[test]
    fn unknown_types_are_named() {
        let mut writer = sample();
        writer.tensor("blk.0.ffn_up.weight", &[256, 2], 12, vec![0; 288]);
        let file = open_bytes(&writer.bytes()).unwrap();
        let info = file.tensor("blk.0.ffn_up.weight").unwrap();
        let error = file.tensor_bytes(info).unwrap_err().to_string();
        assert!(
            error.contains("tensor `blk.0.ffn_up.weight` is Q4_K (type 12), which storytool cannot read"),
            "{error}"
        );
        assert_eq!(TensorType::Other(99).name(), "unknown type 99");
    }

    #[test]
    fn huge_counts_and_offsets_are_refused_without_allocating() {
        // A metadata count of 2^60.
        let mut bytes = sample().bytes();
        bytes[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let error = open_bytes(&bytes).unwrap_err().to_string();
        assert!(error.contains("metadata entries") && error.contains("truncated"), "{error}");
        // A tensor whose bytes lie past the end of the file.
        let mut writer = GgufWriter::default();
        writer.tensor("big", &[1 << 20, 1 << 20], 0, vec![0; 16]);
        let error = open_bytes(&writer.bytes()).unwrap_err().to_string();
        assert!(error.contains("tensor `big`") && error.contains("truncated"), "{error}");
        // A quantised tensor whose rows do not fill whole blocks.
        let mut writer = GgufWriter::default();
        writer.tensor("odd", &[33, 1], 8, vec![0; 68]);
        let error = open_bytes(&writer.bytes()).unwrap_err().to_string();
        assert!(error.contains("not a multiple of its block of 32"), "{error}");
    }

    #[test]
    fn duplicate_tensors_are_refused() {
        let mut writer = sample();
        writer.f32_tensor("norm.weight", &[1], &[1.0]);
        let error = open_bytes(&writer.bytes()).unwrap_err().to_string();
        assert!(error.contains("tensor `norm.weight` is listed twice"), "{error}");
    }
}
