//! `storytool evaluate decoder` for a language-model decoder (`kind = "lm"`): its perplexity on passages of
//! books it never saw, and what each of its inputs is worth.
//!
//! Every passage (three sentences of a held-out book, as in training, read as written) is scored four
//! times, on the same tokens: with its own vector, keywords (its own content words, drawn once by a fixed
//! seed) and genre; with another passage's vector in place of its own; with no keywords; with no genre. A
//! gain is the mean, over passages, of the per-token NLL without the input minus with it, with a 95%
//! interval from the spread of the per-passage differences (paired, so the passages' own difficulty
//! cancels). A gain whose interval holds 0 is an input the decoder does not use.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::EvaluationError;
use super::books::decoder_held_out;
use crate::corpus::sentences::for_each_sentence;
use crate::encoder::SentenceEncoder;
use crate::story::lm_decoder::{LoadedLmDecoder, load_lm_decoder, passage_tokens};
use crate::story::passages::evenly;
use crate::text::content::distinct_content_words;
use crate::train::lm_decoder::{LmBatch, passage_nll, prompt_ids};

#[derive(Debug, Clone)]
pub struct LmDecoderEvalRequest {
    pub decoder_dir: PathBuf,
    pub encoder_dir: PathBuf,
    pub lm_path: PathBuf,
    pub corpus: Option<PathBuf>,
    pub books_dir: Option<PathBuf>,
    pub passages: usize,
    /// Genre name -> catalogue tags (the config's `[genres]`): which genre a held-out book is.
    pub genre_tags: std::collections::HashMap<String, Vec<String>>,
    pub seed: u64,
    pub device: Device,
}

/// A gain in nats per token and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gain {
    pub nats: f64,
    pub low: f64,
    pub high: f64,
}

impl Gain {
    /// Mean and 95% interval of paired differences.
    pub fn of(differences: &[f64]) -> Gain {
        let count = differences.len().max(1) as f64;
        let mean = differences.iter().sum::<f64>() / count;
        let variance = differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (count - 1.0).max(1.0);
        let half = 1.96 * (variance / count).sqrt();
        Gain { nats: mean, low: mean - half, high: mean + half }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LmDecoderEvaluation {
    pub books: usize,
    pub passages: usize,
    pub tokens: usize,
    /// Per-token NLL and perplexity with every input.
    pub nll: f64,
    pub perplexity: f64,
    /// What each input is worth: NLL without it (or with another passage's vector) minus with it.
    pub vector_gain: Gain,
    pub keyword_gain: Gain,
    pub genre_gain: Gain,
    /// The base model alone on the same passages (no prefix, no genre, no keywords, no LoRA), for scale.
    pub base_nll: f64,
}

/// A held-out passage: text, vector (centred as the decoder reads), tokens, keywords, genre.
struct Passage {
    vector: Vec<f32>,
    tokens: Vec<u32>,
    keywords: Vec<String>,
    genre: Option<usize>,
}

pub fn evaluate_lm_decoder(request: &LmDecoderEvalRequest) -> Result<LmDecoderEvaluation, EvaluationError> {
    let decoder = load_lm_decoder(&request.decoder_dir, &request.lm_path, &request.device)?;
    let encoder = SentenceEncoder::load(&request.encoder_dir, &request.device)?;
    if encoder.manifest().vocabulary_hash != decoder.manifest.vocabulary_hash {
        return Err(EvaluationError::NothingToEvaluate(format!(
            "the encoder `{}` is not the one the decoder `{}` was trained with (vocabulary {} vs {})",
            request.encoder_dir.display(),
            request.decoder_dir.display(),
            encoder.manifest().vocabulary_hash,
            decoder.manifest.vocabulary_hash
        )));
    }
    let books = decoder_held_out(
        request.corpus.as_deref(),
        request.books_dir.as_deref(),
        &request.decoder_dir,
        decoder.manifest.held_out.as_ref(),
        encoder.vocabulary(),
    )?;
    let passages = held_out_passages(&decoder, &encoder, &books, request);
    if passages.len() < 2 {
        return Err(EvaluationError::NothingToEvaluate(format!(
            "the held-out books hold {} passages; at least 2 are needed",
            passages.len()
        )));
    }
    let steering = decoder.steering.valid();
    // The unmerged base for the baseline: the LoRA update is in `decoder.lm.model`, so the base is loaded anew.
    let base = crate::language_model::PretrainedLm::load(&request.lm_path, &request.device)
        .map_err(|error| EvaluationError::NothingToEvaluate(crate::util::error_chain(&error)))?;
    let lm = &decoder.lm;
    let score =
        |rows: &[usize], vector_of: &dyn Fn(usize) -> usize, keywords: bool, genre: bool| -> Vec<(f64, usize)> {
            rows.iter()
                .map(|&row| {
                    let passage = &passages[row];
                    let words: &[String] = if keywords { &passage.keywords } else { &[] };
                    let named = passage
                        .genre
                        .filter(|_| genre && decoder.manifest.config.lm.genre_text)
                        .and_then(|index| decoder.manifest.genres.get(index));
                    let prompt = prompt_ids(&lm.tokenizer, named.map(String::as_str), words);
                    let mut ids = prompt.clone();
                    ids.extend_from_slice(&passage.tokens);
                    let vector = &passages[vector_of(row)].vector;
                    let batch = LmBatch {
                        vectors: Tensor::from_data(TensorData::new(vector.clone(), [1, vector.len()]), &request.device),
                        genres: vec![if genre { passage.genre } else { None }],
                        rows: vec![(ids, prompt.len())],
                    };
                    let (nll, count) = passage_nll(&lm.model, &steering, &batch);
                    (f64::from(nll.into_scalar::<f32>()), count)
                })
                .collect()
        };
    let other = |row: usize| (row + passages.len() / 2) % passages.len();
    let rows: Vec<usize> = (0..passages.len()).collect();
    let full = score(&rows, &|row| row, true, true);
    let vector = score(&rows, &other, true, true);
    let keyword = score(&rows, &|row| row, false, true);
    let genre = score(&rows, &|row| row, true, false);
    let per_token = |scores: &[(f64, usize)]| -> Vec<f64> {
        scores.iter().map(|&(nll, count)| nll / count.max(1) as f64).collect()
    };
    let own = per_token(&full);
    let gain = |without: &[(f64, usize)]| {
        let without = per_token(without);
        Gain::of(&without.iter().zip(&own).map(|(a, b)| a - b).collect::<Vec<_>>())
    };
    let tokens: usize = full.iter().map(|&(_, count)| count).sum();
    let nll = full.iter().map(|&(nll, _)| nll).sum::<f64>() / tokens.max(1) as f64;
    let base_total: f64 = passages
        .iter()
        .map(|passage| {
            let ids: Vec<i64> = passage.tokens.iter().map(|&id| i64::from(id)).collect();
            base_passage_nll(&base.model, &ids, &request.device)
        })
        .sum();
    Ok(LmDecoderEvaluation {
        books: books.len(),
        passages: passages.len(),
        tokens,
        nll,
        perplexity: nll.exp(),
        vector_gain: gain(&vector),
        keyword_gain: gain(&keyword),
        genre_gain: gain(&genre),
        base_nll: base_total / tokens.max(1) as f64,
    })
}

/// Summed NLL of a passage's tokens after the first under the bare model.
fn base_passage_nll(model: &crate::model::llama::LanguageModel, ids: &[i64], device: &Device) -> f64 {
    let tokens =
        burn::tensor::Tensor::<2, burn::tensor::Int>::from_data(TensorData::new(ids.to_vec(), [1, ids.len()]), device);
    let logits = model.forward(tokens, None);
    let log_probs = burn::tensor::activation::log_softmax(logits, 2);
    let values: Vec<f32> = log_probs.into_data().try_to_vec().unwrap_or_default();
    let vocab = values.len() / ids.len().max(1);
    (1..ids.len()).map(|at| -f64::from(values[(at - 1) * vocab + ids[at] as usize])).sum()
}

/// Passages of `books` (each book's text re-split into sentences), taken evenly, with everything the
/// decoder reads.
fn held_out_passages(
    decoder: &LoadedLmDecoder,
    encoder: &SentenceEncoder,
    books: &[super::books::HeldOutText],
    request: &LmDecoderEvalRequest,
) -> Vec<Passage> {
    let manifest = &decoder.manifest;
    let per = manifest.config.passage_sentences.max(1);
    let mut windows: Vec<(Vec<String>, Option<usize>)> = Vec::new();
    for book in books {
        let genre = manifest.genres.iter().position(|genre| {
            request.genre_tags.get(genre).is_some_and(|tags| book.tags.iter().any(|tag| tags.contains(tag)))
        });
        let mut sentences = Vec::new();
        for paragraph in book.text.split("\n\n") {
            for_each_sentence(paragraph, |sentence| sentences.push(sentence.to_string()));
        }
        for window in sentences.chunks_exact(per) {
            windows.push((window.to_vec(), genre));
        }
    }
    let chosen = evenly(&windows, request.passages);
    let mut rng = ChaCha8Rng::seed_from_u64(request.seed);
    let max_tokens = manifest.config.lm.max_tokens;
    chosen
        .into_iter()
        .map(|(sentences, genre)| {
            let encoded = encoder.encode(&sentences);
            let mut vector = vec![0f32; encoder.dim()];
            for sentence in &encoded {
                for (sum, value) in vector.iter_mut().zip(&sentence.vector) {
                    *sum += value / encoded.len() as f32;
                }
            }
            if let Some(centre) = &manifest.context_centre {
                centre.apply(&mut vector);
            }
            let text = sentences.join(" ");
            let tokens = passage_tokens(&decoder.lm, &text, max_tokens);
            let mut keywords = distinct_content_words(&text);
            keywords.shuffle(&mut rng);
            keywords.truncate(manifest.config.keywords);
            Passage { vector, tokens, keywords, genre }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Gain;

    #[test]
    fn a_gain_interval_shrinks_with_agreeing_differences() {
        let steady = Gain::of(&[0.5, 0.52, 0.48, 0.5, 0.51, 0.49]);
        assert!((steady.nats - 0.5).abs() < 1e-9 && steady.low > 0.45 && steady.high < 0.55);
        let noisy = Gain::of(&[1.0, -1.0, 0.8, -0.9, 0.2, -0.1]);
        assert!(noisy.low < 0.0 && noisy.high > 0.0);
    }
}
