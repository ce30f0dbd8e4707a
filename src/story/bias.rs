//! `storytool compute-bias`: the style vectors of neural-storyteller's shift
//! `story vector = mean(captions of the photo) - caption bias + genre bias`.
//!
//! The caption bias is the mean skip-thought vector of a caption corpus (what "a caption" looks like); a
//! genre's bias is the mean vector of its books' passages (paragraphs of at least `bias.min_passage_tokens`
//! tokens), its books being those whose catalogue tags are among the genre's tags in the config. A passage's
//! vector is the mean of its sentences' vectors ([`crate::story::passages`]).
//!
//! A bias folder holds `bias.safetensors` (`caption`, and `genre.<name>` for each genre, each `[1, dim]`,
//! f32) and `manifest.json` (the encoder's vocabulary hash and size, counts per genre and their tags).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::captions::{CaptionDataset, DatasetError, DatasetKind};
use crate::config::Config;
use crate::corpus::manifest::{CreatedBy, InputFile};
use crate::corpus::{Corpus, CorpusError};
use crate::encoder::{EncoderError, SentenceEncoder};
use crate::progress::Progress;
use crate::story::passages::{evenly, long_paragraphs, passage_vectors};
use crate::util::Cause;
use crate::util::PathError;
use crate::util::atomic::{StagingDir, StagingError, write_json};
use crate::util::tensor_file::{Precision, Table, TensorFileError, read_table, write_tables};

pub const BIAS_FILE: &str = "bias.safetensors";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const FORMAT: &str = "storytool-style-bias";

#[derive(Debug, Clone)]
pub struct BiasRequest {
    pub encoder_dir: PathBuf,
    pub corpus_dir: PathBuf,
    pub captions: Vec<(DatasetKind, PathBuf)>,
    pub out: PathBuf,
    pub force: bool,
    pub config: Config,
    /// Where the encoder runs.
    pub device: burn::tensor::Device,
    pub command: Vec<String>,
}

/// One genre's bias as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenreBias {
    pub tags: Vec<String>,
    pub books: usize,
    pub passages: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasManifest {
    pub format: String,
    pub created_by: CreatedBy,
    pub encoder: String,
    pub vocabulary_hash: String,
    pub dim: usize,
    pub captions: Vec<InputFile>,
    pub caption_count: usize,
    pub genres: BTreeMap<String, GenreBias>,
    /// Configured genres left out because no book carries their tags.
    pub empty_genres: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BiasError {
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error(transparent)]
    Tensor(#[from] TensorFileError),
    #[error("`{path}` is not a bias folder")]
    NotBias {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error(
        "the encoder `{encoder}` uses another vocabulary ({encoder_hash}) than the corpus `{corpus}` ({corpus_hash})"
    )]
    VocabularyMismatch { encoder: PathBuf, corpus: PathBuf, encoder_hash: String, corpus_hash: String },
    #[error("no genre of the config has a book in the corpus (genres: {0})")]
    NoGenres(String),
    #[error("no captions given")]
    NoCaptions,
}

/// Loaded biases.
#[derive(Debug, Clone)]
pub struct StyleBias {
    pub manifest: BiasManifest,
    pub caption: Vec<f32>,
    pub genres: BTreeMap<String, Vec<f32>>,
}

fn mean(vectors: &[Vec<f32>], dim: usize) -> Vec<f32> {
    let mut sum = vec![0.0f64; dim];
    for vector in vectors {
        for (total, value) in sum.iter_mut().zip(vector) {
            *total += f64::from(*value);
        }
    }
    sum.iter().map(|total| (total / vectors.len().max(1) as f64) as f32).collect()
}

/// Computes the caption bias and one bias per configured genre.
pub fn compute_bias(request: &BiasRequest, progress: &dyn Progress) -> Result<StyleBias, BiasError> {
    if request.captions.is_empty() {
        return Err(BiasError::NoCaptions);
    }
    let staging = StagingDir::new(&request.out, request.force)?;
    let encoder = SentenceEncoder::load(&request.encoder_dir, &request.device)?;
    let corpus = Corpus::open(&request.corpus_dir)?;
    let encoder_hash = encoder.manifest().vocabulary_hash.clone();
    if encoder_hash != corpus.manifest.vocabulary.hash {
        return Err(BiasError::VocabularyMismatch {
            encoder: request.encoder_dir.clone(),
            corpus: request.corpus_dir.clone(),
            encoder_hash,
            corpus_hash: corpus.manifest.vocabulary.hash.clone(),
        });
    }
    let config = &request.config.bias;
    let dim = encoder.dim();

    let mut texts = Vec::new();
    let mut inputs = Vec::new();
    for (kind, path) in &request.captions {
        let dataset = CaptionDataset::read(*kind, path)?;
        inputs.push(InputFile::of(path)?);
        texts.extend(dataset.images.into_iter().flat_map(|image| image.captions).map(|caption| caption.text));
    }
    let texts = evenly(&texts, config.max_passages);
    progress.set_message("encoding captions");
    let caption_vectors: Vec<Vec<f32>> = encoder.encode(&texts).into_iter().map(|encoded| encoded.vector).collect();
    let caption = mean(&caption_vectors, dim);

    let mut genres = BTreeMap::new();
    let mut vectors = BTreeMap::new();
    let mut empty_genres = Vec::new();
    for (name, tags) in &request.config.genres {
        let books: Vec<_> = corpus.books.iter().filter(|book| book.tags.iter().any(|tag| tags.contains(tag))).collect();
        let mut passages = Vec::new();
        for (split_name, split) in [("train", &corpus.train), ("valid", &corpus.valid)] {
            let indices: Vec<usize> =
                books.iter().filter(|book| book.split == split_name).map(|book| book.index_in_split).collect();
            passages.extend(
                long_paragraphs(split, &indices, config.min_passage_tokens)
                    .into_iter()
                    .map(|range| (split_name, range)),
            );
        }
        if passages.is_empty() {
            empty_genres.push(name.clone());
            continue;
        }
        let passages = evenly(&passages, config.max_passages);
        progress.set_message(&format!("encoding {name} passages"));
        let mut genre_vectors = Vec::new();
        for (split_name, split) in [("train", &corpus.train), ("valid", &corpus.valid)] {
            let ranges: Vec<_> =
                passages.iter().filter(|(s, _)| *s == split_name).map(|(_, range)| range.clone()).collect();
            genre_vectors.extend(passage_vectors(&encoder, split, &ranges, |_| {}));
        }
        vectors.insert(name.clone(), mean(&genre_vectors, dim));
        genres.insert(name.clone(), GenreBias { tags: tags.clone(), books: books.len(), passages: passages.len() });
    }
    if genres.is_empty() {
        return Err(BiasError::NoGenres(request.config.genres.keys().cloned().collect::<Vec<_>>().join(", ")));
    }

    let mut tables = vec![Table::new("caption", 1, dim, caption.clone())];
    tables.extend(vectors.iter().map(|(name, vector)| Table::new(format!("genre.{name}"), 1, dim, vector.clone())));
    write_tables(&staging.path().join(BIAS_FILE), &tables.iter().collect::<Vec<_>>(), Precision::F32)?;
    let manifest = BiasManifest {
        format: FORMAT.into(),
        created_by: CreatedBy::now(request.command.clone()),
        encoder: request.encoder_dir.display().to_string(),
        vocabulary_hash: encoder.manifest().vocabulary_hash.clone(),
        dim,
        captions: inputs,
        caption_count: texts.len(),
        genres,
        empty_genres,
    };
    write_json(&staging.path().join(MANIFEST_FILE), &manifest)?;
    staging.commit()?;
    Ok(StyleBias { manifest, caption, genres: vectors })
}

impl StyleBias {
    pub fn load(dir: &Path) -> Result<StyleBias, BiasError> {
        let not_bias = |source: Cause| BiasError::NotBias { path: dir.to_path_buf(), source };
        let path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&path).map_err(|error| PathError::new("read", &path, error))?;
        let manifest: BiasManifest = serde_json::from_slice(&bytes).map_err(|error| not_bias(error.into()))?;
        if manifest.format != FORMAT {
            return Err(not_bias(Cause::from(format!("format `{}`, expected `{FORMAT}`", manifest.format))));
        }
        let file = dir.join(BIAS_FILE);
        let caption = read_table(&file, "caption")?.values;
        let mut genres = BTreeMap::new();
        for name in manifest.genres.keys() {
            genres.insert(name.clone(), read_table(&file, &format!("genre.{name}"))?.values);
        }
        if caption.len() != manifest.dim || genres.values().any(|vector| vector.len() != manifest.dim) {
            return Err(not_bias(Cause::from(format!("vectors are not {}-d as the manifest says", manifest.dim))));
        }
        Ok(StyleBias { manifest, caption, genres })
    }
}
