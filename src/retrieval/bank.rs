//! The caption bank: a caption corpus embedded once by a VSE, searched by photo.
//!
//! A bank folder holds `bank.safetensors` (`vectors`, `[captions, embed_dim]`, int8 with a scale per row:
//! cosines move by about 1e-3, and the committed demo bank is a quarter of its f32 size), `captions.txt` (each row's caption id, e.g. `coco:38`) and
//! `manifest.json` (the VSE's vocabulary hash and size, and each annotation file with its hash), and
//! `keywords.txt` (each row's content words, space-separated: what `generate` gives a decoder that reads
//! keywords). It holds no caption text: text is read, when shown, from the annotation files, found where the
//! manifest says or where the user points, and checked by hash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::trained::TrainedVse;
use crate::captions::{CaptionDataset, DatasetError, DatasetKind};
use crate::corpus::manifest::{CreatedBy, InputFile};
use crate::encoder::SentenceEncoder;
use crate::progress::Progress;
use crate::text::content::distinct_content_words;
use crate::util::Cause;
use crate::util::PathError;
use crate::util::atomic::{StagingDir, StagingError, write_file, write_json};
use crate::util::cancel::{CancelFlag, Interrupted};
use crate::util::tensor_file::{Precision, Table, TensorFileError, read_table, write_tables};

pub const BANK_FILE: &str = "bank.safetensors";
pub const IDS_FILE: &str = "captions.txt";
pub const KEYWORDS_FILE: &str = "keywords.txt";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const FORMAT: &str = "storytool-caption-bank";

/// An annotation file whose captions are in the bank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankSource {
    pub dataset: DatasetKind,
    pub annotations: InputFile,
    pub captions: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankManifest {
    pub format: String,
    pub created_by: CreatedBy,
    pub vse_vocabulary_hash: String,
    pub embed_dim: usize,
    /// The captions' skip-thought vectors (`thoughts` table), when built with `--encoder`: `generate` reads
    /// them instead of encoding caption text, which the bank does not hold.
    #[serde(default)]
    pub thoughts: Option<ThoughtsInfo>,
    pub sources: Vec<BankSource>,
    pub captions: usize,
    /// Whether `keywords.txt` is there (banks built before it was added have none).
    #[serde(default)]
    pub keywords: bool,
}

/// Which encoder made a bank's `thoughts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThoughtsInfo {
    pub encoder: String,
    pub vocabulary_hash: String,
    pub dim: usize,
}

/// A loaded bank.
#[derive(Debug, Clone)]
pub struct CaptionBank {
    pub dir: PathBuf,
    pub manifest: BankManifest,
    pub ids: Vec<String>,
    pub vectors: Table,
    /// Skip-thought vectors of the captions, row for row, when the bank has them.
    pub thoughts: Option<Table>,
    /// Content words of each caption, row for row, when the bank has them.
    pub keywords: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error(transparent)]
    Tensor(#[from] TensorFileError),
    #[error("`{path}` is not a caption bank")]
    NotBank {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error(
        "the caption bank `{bank}` was built with another VSE (vocabulary {bank_hash}, {bank_dim}-d) than `{vse}` (vocabulary {vse_hash}, {vse_dim}-d)\n\nhint: rebuild it with `storytool build-caption-bank --vse {vse}`"
    )]
    VseMismatch { bank: PathBuf, vse: PathBuf, bank_hash: String, vse_hash: String, bank_dim: usize, vse_dim: usize },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// Captions per progress update while embedding.
const CHUNK: usize = 2048;

/// Embeds every caption of `sources` with `vse` into a bank at `out`.
pub fn build_bank(
    vse: &TrainedVse,
    encoder: Option<(&SentenceEncoder, &Path)>,
    sources: &[(DatasetKind, PathBuf)],
    out: &Path,
    force: bool,
    command: Vec<String>,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<CaptionBank, BankError> {
    let staging = StagingDir::new(out, force)?;
    let mut ids = Vec::new();
    let mut texts = Vec::new();
    let mut keywords = Vec::new();
    let mut bank_sources = Vec::new();
    for (kind, path) in sources {
        let dataset = CaptionDataset::read(*kind, path)?;
        bank_sources.push(BankSource {
            dataset: *kind,
            annotations: InputFile::of(path)?,
            captions: dataset.caption_count(),
        });
        for caption in dataset.images.into_iter().flat_map(|image| image.captions) {
            ids.push(caption.id);
            keywords.push(distinct_content_words(&caption.text).join(" "));
            texts.push(caption.text);
        }
    }
    progress.set_total(texts.len() as u64);
    let mut vectors = Vec::with_capacity(texts.len() * vse.embed_dim());
    let mut thoughts = Vec::new();
    for chunk in texts.chunks(CHUNK) {
        cancel.check()?;
        vectors.extend(vse.embed_texts(chunk));
        if let Some((encoder, _)) = encoder {
            thoughts.extend(encoder.encode(chunk).into_iter().flat_map(|encoded| encoded.vector));
        }
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    let mut tables = vec![Table::new("vectors", ids.len(), vse.embed_dim(), vectors)];
    if let Some((encoder, _)) = encoder {
        tables.push(Table::new("thoughts", ids.len(), encoder.dim(), thoughts));
    }
    write_tables(&staging.path().join(BANK_FILE), &tables.iter().collect::<Vec<_>>(), Precision::I8)?;
    write_file(&staging.path().join(IDS_FILE), ids.join("\n").as_bytes())?;
    write_file(&staging.path().join(KEYWORDS_FILE), keywords.join("\n").as_bytes())?;
    let manifest = BankManifest {
        format: FORMAT.into(),
        created_by: CreatedBy::now(command),
        vse_vocabulary_hash: vse.manifest.vocabulary_hash.clone(),
        embed_dim: vse.embed_dim(),
        thoughts: encoder.map(|(encoder, dir)| ThoughtsInfo {
            encoder: dir.display().to_string(),
            vocabulary_hash: encoder.manifest().vocabulary_hash.clone(),
            dim: encoder.dim(),
        }),
        sources: bank_sources,
        captions: ids.len(),
        keywords: true,
    };
    write_json(&staging.path().join(MANIFEST_FILE), &manifest)?;
    staging.commit()?;
    CaptionBank::load(out)
}

impl CaptionBank {
    pub fn load(dir: &Path) -> Result<CaptionBank, BankError> {
        let not_bank = |source: Cause| BankError::NotBank { path: dir.to_path_buf(), source };
        let manifest_path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&manifest_path).map_err(|error| PathError::new("read", &manifest_path, error))?;
        let manifest: BankManifest = serde_json::from_slice(&bytes).map_err(|error| not_bank(error.into()))?;
        if manifest.format != FORMAT {
            return Err(not_bank(Cause::from(format!("format `{}`, expected `{FORMAT}`", manifest.format))));
        }
        let ids_path = dir.join(IDS_FILE);
        let ids: Vec<String> = std::fs::read_to_string(&ids_path)
            .map_err(|error| PathError::new("read", &ids_path, error))?
            .lines()
            .map(String::from)
            .collect();
        let vectors = read_table(&dir.join(BANK_FILE), "vectors")?;
        if vectors.rows != ids.len() || vectors.columns != manifest.embed_dim {
            return Err(not_bank(Cause::from(format!(
                "{} ids but a {}x{} table (manifest: {}-d)",
                ids.len(),
                vectors.rows,
                vectors.columns,
                manifest.embed_dim
            ))));
        }
        let thoughts = match &manifest.thoughts {
            Some(info) => {
                let table = read_table(&dir.join(BANK_FILE), "thoughts")?;
                if table.rows != ids.len() || table.columns != info.dim {
                    return Err(not_bank(Cause::from(format!(
                        "its thoughts table is {}x{}",
                        table.rows, table.columns
                    ))));
                }
                Some(table)
            }
            None => None,
        };
        let keywords = if manifest.keywords {
            let path = dir.join(KEYWORDS_FILE);
            let text = std::fs::read_to_string(&path).map_err(|error| PathError::new("read", &path, error))?;
            // One line per row, joined by newlines (a row without content words is an empty line).
            let mut lines: Vec<String> =
                if ids.is_empty() { Vec::new() } else { text.split('\n').map(String::from).collect() };
            if lines.len() != ids.len() {
                return Err(not_bank(Cause::from(format!(
                    "{} ids but {} lines in {KEYWORDS_FILE}",
                    ids.len(),
                    lines.len()
                ))));
            }
            lines.shrink_to_fit();
            Some(lines)
        } else {
            None
        };
        Ok(CaptionBank { dir: dir.to_path_buf(), manifest, ids, vectors, thoughts, keywords })
    }

    /// Refuses a bank built by another VSE than `vse`.
    pub fn check_vse(&self, vse: &TrainedVse) -> Result<(), BankError> {
        if self.manifest.vse_vocabulary_hash != vse.manifest.vocabulary_hash
            || self.manifest.embed_dim != vse.embed_dim()
        {
            return Err(BankError::VseMismatch {
                bank: self.dir.clone(),
                vse: vse.dir.clone(),
                bank_hash: self.manifest.vse_vocabulary_hash.clone(),
                vse_hash: vse.manifest.vocabulary_hash.clone(),
                bank_dim: self.manifest.embed_dim,
                vse_dim: vse.embed_dim(),
            });
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `k` rows most similar to `query` (a unit vector), best first, with their cosine scores.
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        self.nearest_where(query, k, |_| true)
    }

    /// [`nearest`](Self::nearest) among the rows `keep` accepts.
    pub fn nearest_where(&self, query: &[f32], k: usize, keep: impl Fn(usize) -> bool) -> Vec<(usize, f32)> {
        let scores = super::metrics::scores(query, 1, &self.vectors.values, self.vectors.rows, self.vectors.columns);
        let mut order: Vec<usize> = (0..scores.len()).filter(|&row| keep(row)).collect();
        let k = k.min(order.len());
        if k == 0 {
            return Vec::new();
        }
        order.select_nth_unstable_by(k - 1, |&a, &b| scores[b].total_cmp(&scores[a]));
        order.truncate(k);
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.into_iter().map(|index| (index, scores[index])).collect()
    }

    /// Caption texts by id, read from the bank's annotation files: where the manifest recorded them, or
    /// any of `extra` whose content hash matches a source. Sources found nowhere are returned by path.
    pub fn texts(&self, extra: &[PathBuf]) -> (HashMap<String, String>, Vec<String>) {
        let mut texts = HashMap::new();
        let mut unavailable = Vec::new();
        for source in &self.manifest.sources {
            let candidates = std::iter::once(PathBuf::from(&source.annotations.path)).chain(extra.iter().cloned());
            let found = candidates.filter(|path| path.is_file()).find(|path| {
                std::fs::metadata(path).is_ok_and(|meta| meta.len() == source.annotations.bytes)
                    && InputFile::of(path).is_ok_and(|file| file.blake3 == source.annotations.blake3)
            });
            match found.map(|path| CaptionDataset::read(source.dataset, &path)) {
                Some(Ok(dataset)) => {
                    for caption in dataset.images.into_iter().flat_map(|image| image.captions) {
                        texts.insert(caption.id, caption.text);
                    }
                }
                _ => unavailable.push(source.annotations.path.clone()),
            }
        }
        (texts, unavailable)
    }
}
