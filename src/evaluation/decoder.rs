//! `storytool evaluate decoder`: how well a story decoder writes held-out passages, and how much of that it
//! owes to its input vector.
//!
//! For passages of books it never saw (three sentences, as in training, each passage's vector the mean of
//! its sentences' skip-thought vectors): the perplexity with each passage's own vector, the *conditioning
//! gain* (mean NLL per token with another passage's vector minus with its own: 0 means the input is
//! ignored), and the content-word recall of greedy reconstructions from the own vector beside the recall of
//! reconstructions from another passage's vector (what the decoder writes from its prior alone).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use super::EvaluationError;
use super::books::{HeldOutText, decoder_held_out};
use super::text::content_words;
use crate::encoder::SentenceEncoder;
use crate::model::batch::PaddedBatch;
use crate::model::skip_thought::DecoderTargets;
use crate::model::story_decoder::{ConditionInputs, StoryDecoder};
use crate::story::decoder::DecoderManifest;
use crate::story::decoder::load_decoder;
use crate::story::passages::{evenly, mean_sentence_vectors};
use crate::text::{EOS_ID, UNK_ID};
use crate::util::values::f32_values;

const BATCH: usize = 32;

#[derive(Debug, Clone)]
pub struct DecoderEvalRequest {
    pub decoder_dir: PathBuf,
    pub encoder_dir: PathBuf,
    /// Read the held-out books from this corpus's validation split instead of the decoder's manifest.
    pub corpus: Option<PathBuf>,
    /// The folder of the books the manifest names, if not where it records.
    pub books_dir: Option<PathBuf>,
    /// Passages scored for perplexity and gain, taken evenly across the books.
    pub passages: usize,
    /// Passages reconstructed greedily for the recall.
    pub reconstructions: usize,
    /// Where the models run.
    pub device: Device,
}

/// The figures, as `--json` prints them.
#[derive(Debug, Clone, Serialize)]
pub struct DecoderEvaluation {
    pub books: usize,
    pub passages: usize,
    pub tokens: usize,
    /// Share of the passages' tokens the vocabulary lacks (`<unk>`).
    pub unknown_share: f32,
    pub nll_own: f32,
    pub nll_other: f32,
    pub perplexity: f32,
    /// `nll_other - nll_own`, nats per token.
    pub conditioning_gain_nats: f32,
    pub reconstructions: usize,
    /// Content words of a passage that its greedy reconstruction from its own vector writes.
    pub content_recall_own: f32,
    /// The same from another passage's vector: what the prior alone gets.
    pub content_recall_other: f32,
    /// A few passages and what was written from their vectors.
    pub samples: Vec<Reconstruction>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reconstruction {
    pub passage: String,
    pub written: String,
}

/// One scored passage: its tokens and its vector as the decoder reads it.
struct Passage {
    tokens: Vec<u32>,
    vector: Vec<f32>,
}

pub fn evaluate_decoder(request: &DecoderEvalRequest) -> Result<DecoderEvaluation, EvaluationError> {
    let (decoder, vocabulary, manifest) = load_decoder(&request.decoder_dir, &request.device)?;
    let encoder = SentenceEncoder::load(&request.encoder_dir, &request.device)?;
    check_fit(&encoder, &manifest, &request.encoder_dir, &request.decoder_dir)?;
    let books = decoder_held_out(
        request.corpus.as_deref(),
        request.books_dir.as_deref(),
        &request.decoder_dir,
        manifest.held_out.as_ref(),
        &vocabulary,
    )?;
    let passages = passages(&books, &encoder, &manifest, request.passages);
    if passages.len() < 2 {
        return Err(EvaluationError::NothingToEvaluate(format!(
            "the held-out books hold {} passages of {} sentences; at least 2 are needed",
            passages.len(),
            manifest.config.passage_sentences
        )));
    }
    // Another passage's vector: half the list away, so usually another book's.
    let other = |index: usize| (index + passages.len() / 2) % passages.len();
    let device = request.device.clone();
    let (mut own_sum, mut other_sum, mut tokens) = (0.0f64, 0.0f64, 0usize);
    for start in (0..passages.len()).step_by(BATCH) {
        let rows: Vec<usize> = (start..(start + BATCH).min(passages.len())).collect();
        let padded =
            PaddedBatch::new(rows.iter().map(|&row| passages[row].tokens.as_slice()), manifest.config.max_tokens);
        let targets = DecoderTargets::new(&padded, &device);
        let count: usize = padded.lengths.iter().sum();
        let own = vector_only(&decoder, contexts(&rows, |row| &passages[row].vector, &device));
        let others = vector_only(&decoder, contexts(&rows, |row| &passages[other(row)].vector, &device));
        own_sum += f64::from(decoder.loss(own, &targets, None).into_scalar::<f32>()) * count as f64;
        other_sum += f64::from(decoder.loss(others, &targets, None).into_scalar::<f32>()) * count as f64;
        tokens += count;
    }
    let nll_own = (own_sum / tokens as f64) as f32;
    let nll_other = (other_sum / tokens as f64) as f32;

    let chosen: Vec<usize> = evenly(&(0..passages.len()).collect::<Vec<_>>(), request.reconstructions);
    let max_tokens = manifest.config.max_tokens;
    let written_own =
        greedy(&decoder, &chosen.iter().map(|&i| passages[i].vector.clone()).collect::<Vec<_>>(), max_tokens);
    let written_other =
        greedy(&decoder, &chosen.iter().map(|&i| passages[other(i)].vector.clone()).collect::<Vec<_>>(), max_tokens);
    let text = |ids: &[u32]| ids.iter().filter_map(|&id| vocabulary.word(id)).collect::<Vec<_>>().join(" ");
    let recall = |written: &[Vec<u32>]| {
        let (mut hits, mut total) = (0usize, 0usize);
        for (&index, ids) in chosen.iter().zip(written) {
            let wanted: BTreeSet<String> = content_words(&text(&passages[index].tokens)).into_iter().collect();
            let got: BTreeSet<String> = content_words(&text(ids)).into_iter().collect();
            hits += wanted.intersection(&got).count();
            total += wanted.len();
        }
        hits as f32 / total.max(1) as f32
    };
    let unknown = passages.iter().flat_map(|passage| &passage.tokens).filter(|&&id| id == UNK_ID).count();
    let all = passages.iter().map(|passage| passage.tokens.len()).sum::<usize>();
    Ok(DecoderEvaluation {
        books: books.len(),
        passages: passages.len(),
        tokens,
        unknown_share: unknown as f32 / all.max(1) as f32,
        nll_own,
        nll_other,
        perplexity: nll_own.exp(),
        conditioning_gain_nats: nll_other - nll_own,
        reconstructions: chosen.len(),
        content_recall_own: recall(&written_own),
        content_recall_other: recall(&written_other),
        samples: chosen
            .iter()
            .zip(&written_own)
            .take(3)
            .map(|(&index, ids)| Reconstruction { passage: text(&passages[index].tokens), written: text(ids) })
            .collect(),
    })
}

/// Refuses an encoder and decoder that do not fit together, naming both.
pub fn check_fit(
    encoder: &SentenceEncoder,
    manifest: &DecoderManifest,
    encoder_dir: &Path,
    decoder_dir: &Path,
) -> Result<(), EvaluationError> {
    let mismatch = |what, a_value: String, b_value: String| EvaluationError::Mismatch {
        what,
        a: encoder_dir.display().to_string(),
        a_value,
        b: decoder_dir.display().to_string(),
        b_value,
    };
    if encoder.manifest().vocabulary_hash != manifest.vocabulary_hash {
        return Err(mismatch(
            "vocabularies",
            encoder.manifest().vocabulary_hash.clone(),
            manifest.vocabulary_hash.clone(),
        ));
    }
    if encoder.dim() != manifest.context_dim {
        return Err(mismatch("vector sizes", encoder.dim().to_string(), manifest.context_dim.to_string()));
    }
    Ok(())
}

/// Passages of `passage_sentences` sentences from every book, at most `limit` taken evenly, with their
/// vectors (the mean of the sentences' vectors, centred as the decoder was trained).
fn passages(
    books: &[HeldOutText],
    encoder: &SentenceEncoder,
    manifest: &DecoderManifest,
    limit: usize,
) -> Vec<Passage> {
    let size = manifest.config.passage_sentences.max(1);
    let windows: Vec<(usize, usize)> = books
        .iter()
        .enumerate()
        .flat_map(|(book, text)| (0..text.sentences.len() / size).map(move |window| (book, window * size)))
        .collect();
    let windows = evenly(&windows, limit);
    let mut passages = Vec::with_capacity(windows.len());
    for chunk in windows.chunks(256) {
        let sentences: Vec<Vec<&[u32]>> = chunk
            .iter()
            .map(|&(book, start)| books[book].sentences[start..start + size].iter().map(Vec::as_slice).collect())
            .collect();
        let vectors = mean_sentence_vectors(encoder, &sentences);
        for (mut mean, &(book, start)) in vectors.into_iter().zip(chunk) {
            if let Some(centre) = &manifest.context_centre {
                centre.apply(&mut mean);
            }
            let mut tokens: Vec<u32> = books[book].sentences[start..start + size].concat();
            tokens.truncate(manifest.config.max_tokens);
            passages.push(Passage { tokens, vector: mean });
        }
    }
    passages
}

/// The condition of vectors alone: a decoder that also reads keywords and genres is given none, so the
/// figures measure what the skip-thought vector carries.
fn vector_only(decoder: &StoryDecoder, vectors: Tensor<2>) -> Tensor<2> {
    decoder.condition(vectors, &ConditionInputs::default())
}

fn contexts<'a>(rows: &[usize], vector: impl Fn(usize) -> &'a Vec<f32>, device: &Device) -> Tensor<2> {
    let dim = vector(rows[0]).len();
    let values: Vec<f32> = rows.iter().flat_map(|&row| vector(row).iter().copied()).collect();
    Tensor::from_data(TensorData::new(values, [rows.len(), dim]), device)
}

/// Greedy decoding from each vector (never `<unk>`), up to `<eos>` or `max_tokens` words.
pub fn greedy(decoder: &StoryDecoder, vectors: &[Vec<f32>], max_tokens: usize) -> Vec<Vec<u32>> {
    let device = crate::device::of_module(decoder);
    let mut written = vec![Vec::new(); vectors.len()];
    for (chunk_index, chunk) in vectors.chunks(BATCH).enumerate() {
        let rows: Vec<usize> = (0..chunk.len()).collect();
        let context = vector_only(decoder, contexts(&rows, |row| &chunk[row], &device));
        let mut state = decoder.start(context.clone());
        let mut previous: Option<Vec<u32>> = None;
        let mut done = vec![false; chunk.len()];
        for _ in 0..max_tokens {
            let step = decoder.step(previous.as_deref(), state, &context);
            let [_, vocab] = step.log_probs.dims();
            let values = f32_values(step.log_probs);
            let best: Vec<u32> = values
                .chunks(vocab)
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .filter(|&(id, _)| id as u32 != UNK_ID)
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map_or(EOS_ID, |(id, _)| id as u32)
                })
                .collect();
            for (row, &id) in best.iter().enumerate() {
                if !done[row] {
                    if id == EOS_ID {
                        done[row] = true;
                    } else {
                        written[chunk_index * BATCH + row].push(id);
                    }
                }
            }
            if done.iter().all(|&finished| finished) {
                break;
            }
            state = step.state;
            previous = Some(best);
        }
    }
    written
}
