//! Held-out novels read for an evaluation: the books a decoder's manifest names (or a corpus's validation
//! split), tokenized with the model's own vocabulary, so that books no model saw can be scored by any model.

use std::path::{Path, PathBuf};

use super::EvaluationError;
use crate::corpus::Corpus;
use crate::corpus::book::tokenize_book;
use crate::corpus::decode::{NotText, decode};
use crate::corpus::discover::stays_inside;
use crate::story::decoder::HeldOutBooks;
use crate::text::{UNK_ID, Vocabulary};
use crate::util::Cause;

/// One held-out book: its tags and its sentences as ids of the model's vocabulary.
#[derive(Debug, Clone)]
pub struct HeldOutText {
    pub file: String,
    pub tags: Vec<String>,
    pub sentences: Vec<Vec<u32>>,
    /// Its text's words, for classifiers that do not use the vocabulary.
    pub text: String,
}

/// Why held-out books could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BooksError {
    #[error("cannot read the held-out book `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error(
        "the model records no held-out books (it predates `evaluate`)\n\nhint: pass `--corpus DIR`, a corpus whose validation books it did not train on"
    )]
    NoneRecorded,
    #[error("the corpus `{corpus}` has vocabulary {corpus_hash}, but the model `{model}` has {model_hash}")]
    VocabularyMismatch { corpus: PathBuf, corpus_hash: String, model: PathBuf, model_hash: String },
}

/// Reads `held_out` (files relative to `books_dir`, or to its recorded folder) with `vocabulary`.
pub fn read_held_out(
    held_out: &HeldOutBooks,
    books_dir: Option<&Path>,
    vocabulary: &Vocabulary,
) -> Result<Vec<HeldOutText>, BooksError> {
    let folder = books_dir.map_or_else(|| PathBuf::from(&held_out.books_dir), Path::to_path_buf);
    held_out
        .books
        .iter()
        .map(|book| {
            let path = folder.join(&book.file);
            if !stays_inside(&book.file) {
                return Err(BooksError::Read { path, source: "the name leaves the books folder".into() });
            }
            let bytes =
                std::fs::read(&path).map_err(|error| BooksError::Read { path: path.clone(), source: error.into() })?;
            let (text, _) = decode(bytes).map_err(|error| BooksError::Read {
                path: path.clone(),
                source: match error {
                    NotText::Empty => "it is empty".into(),
                    NotText::Binary => "it is binary, not text".into(),
                },
            })?;
            let (table, tokens) = tokenize_book(&text, vocabulary.lowercase());
            let ids: Vec<u32> = table.words.words().map(|word| vocabulary.id(word)).collect();
            let mut sentences = Vec::with_capacity(tokens.n_sentences());
            let mut start = 0usize;
            for &length in &tokens.sentence_lengths {
                let end = start + length as usize;
                sentences.push(tokens.tokens[start..end].iter().map(|&local| ids[local as usize]).collect());
                start = end;
            }
            let text = crate::corpus::book::clean_paragraphs(&text).iter().collect::<Vec<_>>().join("\n\n");
            Ok(HeldOutText { file: book.file.clone(), tags: book.tags.clone(), sentences, text })
        })
        .collect()
}

/// The books a decoder did not train on: `corpus`'s validation split when given, else the held-out books
/// its manifest records (read from `books_dir`, or the folder it records).
pub fn decoder_held_out(
    corpus: Option<&Path>,
    books_dir: Option<&Path>,
    decoder_dir: &Path,
    held_out: Option<&HeldOutBooks>,
    vocabulary: &Vocabulary,
) -> Result<Vec<HeldOutText>, EvaluationError> {
    match (corpus, held_out) {
        (Some(corpus), _) => corpus_held_out(corpus, decoder_dir, &vocabulary.content_hash()),
        (None, Some(held_out)) => Ok(read_held_out(held_out, books_dir, vocabulary)?),
        (None, None) => Err(BooksError::NoneRecorded.into()),
    }
}

/// The validation books of a corpus, read from its streams; its vocabulary must be the model's.
pub fn corpus_held_out(
    corpus_dir: &Path,
    model_dir: &Path,
    model_hash: &str,
) -> Result<Vec<HeldOutText>, EvaluationError> {
    let corpus = Corpus::open(corpus_dir)?;
    if corpus.manifest.vocabulary.hash != model_hash {
        return Err(BooksError::VocabularyMismatch {
            corpus: corpus_dir.to_path_buf(),
            corpus_hash: corpus.manifest.vocabulary.hash.clone(),
            model: model_dir.to_path_buf(),
            model_hash: model_hash.to_string(),
        }
        .into());
    }
    let records: Vec<_> = corpus.books.iter().filter(|book| book.split == "valid").collect();
    let mut books = Vec::new();
    for record in records {
        let range = corpus.valid.book_sentences(record.index_in_split);
        let sentences: Vec<Vec<u32>> = range.map(|sentence| corpus.valid.sentence(sentence).to_vec()).collect();
        let text = sentences
            .iter()
            .map(|sentence| {
                sentence
                    .iter()
                    .filter(|&&id| id != UNK_ID)
                    .filter_map(|&id| corpus.vocabulary.word(id))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" ");
        books.push(HeldOutText { file: record.file.clone(), tags: record.tags.clone(), sentences, text });
    }
    Ok(books)
}
