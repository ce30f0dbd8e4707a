//! `storytool train-decoder`: the story decoder's training loop.
//!
//! Passages of `decoder.passage_sentences` consecutive sentences are taken evenly across the corpus's
//! training books (at most `decoder.max_passages`), each encoded once by the frozen skip-thought encoder
//! (the mean of its sentences' vectors); the decoder learns to write each passage back from its vector and,
//! with `decoder.keywords` and `decoder.genre_input`, from a few of its own content words (sampled afresh
//! for every batch) and its book's genres.
//! Batches, Adam, sampled softmax, validation on held-out books, checkpoints, resume, Ctrl-C and the NaN
//! guard work as in [`super::encoder`].

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::batches::plan_epoch;
use super::run::{
    LossWindow, MANIFEST_FILE, Position, RunState, TokenLossLog, TrainError, TrainingTask, export_weights, store_error,
};
use super::trainer::{RunEnd, RunOptions, Trainer, train};
use crate::config::{Config, DecoderConfig, TrainSchedule};
use crate::corpus::Corpus;
use crate::corpus::manifest::{BookRecord, CreatedBy};
use crate::corpus::streams::SplitStreams;
use crate::encoder::SentenceEncoder;
use crate::model::batch::PaddedBatch;
use crate::model::skip_thought::{DecoderTargets, sample_candidates};
use crate::model::story_decoder::{ConditionInputs, StoryDecoder, StoryDecoderConfig};
use crate::progress::Progress;
use crate::story::passages::{evenly, passage_tokens, passage_vectors, sentence_windows};
use crate::text::content::content_ids;
use crate::util::atomic::write_json;

use crate::story::decoder::{
    ContextCentre, DECODER_FILE, DECODER_FORMAT, DecoderManifest, HeldOutBooks, TOKENIZER_FILE,
};
/// Held-out passages encoded for validation.
const VALID_PASSAGES: usize = 1024;

#[derive(Debug, Clone)]
pub struct DecoderTrainRequest {
    pub corpus_dir: PathBuf,
    pub encoder_dir: PathBuf,
    pub config: Config,
    pub run: RunOptions,
}

#[derive(Debug, Clone)]
pub struct DecoderTrainReport {
    pub steps: u64,
    pub resumed_from: Option<u64>,
    pub train_loss: Option<f32>,
    pub valid_loss: Option<f32>,
    pub train_passages: usize,
    pub valid_passages: usize,
    /// Seconds spent making the passages (reading and encoding them) before the first step.
    pub encode_seconds: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderState {
    #[serde(flatten)]
    position: Position,
    #[serde(deserialize_with = "crate::config::section_with_lifted_schedule")]
    decoder: DecoderConfig,
    vocabulary_hash: String,
    context_dim: usize,
    #[serde(default)]
    genres: Vec<String>,
}

impl RunState for DecoderState {
    fn position(&mut self) -> &mut Position {
        &mut self.position
    }
}

/// Passages with their tokens, vectors, content words and genres.
struct PassageSet {
    tokens: Vec<Vec<u32>>,
    vectors: Vec<Vec<f32>>,
    lengths: Vec<usize>,
    /// Each passage's distinct content words: what its keywords are sampled from.
    content: Vec<Vec<u32>>,
    /// Each passage's book's genres, multi-hot over [`DecoderManifest::genres`].
    genres: Vec<Vec<f32>>,
}

impl PassageSet {
    fn new(
        encoder: &SentenceEncoder,
        split: &SplitStreams,
        windows: &[Range<usize>],
        max_tokens: usize,
        facts: &PassageFacts,
        book_genres: &[Vec<f32>],
        progress: &dyn Progress,
    ) -> PassageSet {
        let tokens: Vec<Vec<u32>> = windows.iter().map(|window| passage_tokens(split, window, max_tokens)).collect();
        let mut done = 0;
        let vectors = passage_vectors(encoder, split, windows, |count| {
            done += count;
            progress.set_message(&format!("encoding passages: {done}/{}", windows.len()));
        });
        let lengths = tokens.iter().map(Vec::len).collect();
        let content = tokens
            .iter()
            .map(|passage| {
                let mut words: Vec<u32> = Vec::new();
                for &id in passage {
                    if facts.content.get(id as usize).copied().unwrap_or(false) && !words.contains(&id) {
                        words.push(id);
                    }
                }
                words
            })
            .collect();
        let book_starts: Vec<usize> = (0..split.n_books()).map(|book| split.book_sentences(book).start).collect();
        let genres = windows
            .iter()
            .map(|window| {
                let book = book_starts.partition_point(|&start| start <= window.start).saturating_sub(1);
                book_genres.get(book).cloned().unwrap_or_default()
            })
            .collect();
        PassageSet { tokens, vectors, lengths, content, genres }
    }

    /// The passages `indices` as skip-thought vectors, condition inputs (keywords sampled by `rng`) and
    /// padded targets.
    fn batch(
        &self,
        indices: &[usize],
        config: &DecoderConfig,
        rng: &mut impl Rng,
        device: &Device,
    ) -> (Tensor<2>, ConditionInputs, PaddedBatch) {
        let dim = self.vectors[0].len();
        let context: Vec<f32> = indices.iter().flat_map(|&index| self.vectors[index].iter().copied()).collect();
        let context = Tensor::from_data(TensorData::new(context, [indices.len(), dim]), device);
        let padded = PaddedBatch::new(indices.iter().map(|&index| self.tokens[index].as_slice()), config.max_tokens);
        let mut inputs = ConditionInputs::default();
        for &index in indices {
            let mut words = self.content[index].clone();
            let wanted = rng.random_range(0..=config.keywords).min(words.len());
            words.partial_shuffle(rng, wanted);
            words.truncate(wanted);
            inputs.keywords.push(words);
            let dropped = config.genre_dropout > 0.0 && rng.random::<f32>() < config.genre_dropout;
            inputs.genres.push(if dropped { Vec::new() } else { self.genres[index].clone() });
        }
        (context, inputs, padded)
    }
}

/// What passages are labelled with: which word ids carry content, and the genres' names.
struct PassageFacts {
    content: Vec<bool>,
    genres: Vec<String>,
}

/// The books of `split` in their order in the split, each with the indices of the `genres` it carries
/// (a genre is a set of catalogue tags in the config's `[genres]`).
pub(crate) fn books_with_genres<'a>(
    corpus: &'a Corpus,
    split: &str,
    genres: &[String],
    config: &Config,
) -> Vec<(&'a BookRecord, Vec<usize>)> {
    let mut books: Vec<&BookRecord> = corpus.books.iter().filter(|book| book.split == split).collect();
    books.sort_by_key(|book| book.index_in_split);
    books
        .into_iter()
        .map(|book| {
            let own = (0..genres.len())
                .filter(|&genre| book.tags.iter().any(|tag| config.genres[&genres[genre]].contains(tag)))
                .collect();
            (book, own)
        })
        .collect()
}

/// Each book of `split` (by index in the split) as a multi-hot vector over `genres`.
fn book_genre_vectors(corpus: &Corpus, split: &str, genres: &[String], config: &Config) -> Vec<Vec<f32>> {
    books_with_genres(corpus, split, genres, config)
        .into_iter()
        .map(|(_, own)| (0..genres.len()).map(|genre| if own.contains(&genre) { 1.0 } else { 0.0 }).collect())
        .collect()
}

pub fn train_decoder(request: &DecoderTrainRequest, progress: &dyn Progress) -> Result<DecoderTrainReport, TrainError> {
    train(request, progress)
}

/// The opened corpus and encoder, and the passages encoded once for the whole run.
pub struct DecoderData {
    corpus: Corpus,
    context_dim: usize,
    train: PassageSet,
    valid: PassageSet,
    centre: Option<ContextCentre>,
    facts: PassageFacts,
    encode_seconds: f32,
    /// The encoder's word embeddings when their size is the decoder's: its starting embeddings.
    encoder_embeddings: Option<Vec<f32>>,
}

impl Trainer for DecoderTrainRequest {
    type Data = DecoderData;
    type Model = StoryDecoder;
    type State = DecoderState;
    type Task<'a> = DecoderTask<'a>;
    type Report = DecoderTrainReport;

    fn options(&self) -> &RunOptions {
        &self.run
    }

    fn schedule(&self) -> &TrainSchedule {
        &self.config.decoder.train
    }

    fn inputs(&self) -> Vec<&Path> {
        vec![&self.corpus_dir, &self.encoder_dir]
    }

    fn open(&self, progress: &dyn Progress) -> Result<DecoderData, TrainError> {
        let config = &self.config.decoder;
        let corpus = Corpus::open(&self.corpus_dir)?;
        let encoder = SentenceEncoder::load(&self.encoder_dir, self.run.main_device())?;
        let encoder_hash = &encoder.manifest().vocabulary_hash;
        if *encoder_hash != corpus.manifest.vocabulary.hash {
            return Err(TrainError::Input(format!(
                "the encoder `{}` was trained on another vocabulary ({encoder_hash}) than the corpus `{}` has ({})",
                self.encoder_dir.display(),
                self.corpus_dir.display(),
                corpus.manifest.vocabulary.hash
            )));
        }
        let train_windows = evenly(&sentence_windows(&corpus.train, config.passage_sentences), config.max_passages);
        let valid_windows = evenly(&sentence_windows(&corpus.valid, config.passage_sentences), VALID_PASSAGES);
        if train_windows.is_empty() {
            return Err(TrainError::NoExamples(format!(
                "no training book has {} consecutive sentences",
                config.passage_sentences
            )));
        }
        let genres: Vec<String> =
            if config.genre_input { self.config.genres.keys().cloned().collect() } else { Vec::new() };
        let facts = PassageFacts { content: content_ids(&corpus.vocabulary), genres };
        let train_genres = book_genre_vectors(&corpus, "train", &facts.genres, &self.config);
        let valid_genres = book_genre_vectors(&corpus, "valid", &facts.genres, &self.config);
        let started = Instant::now();
        let mut train = PassageSet::new(
            &encoder,
            &corpus.train,
            &train_windows,
            config.max_tokens,
            &facts,
            &train_genres,
            progress,
        );
        let mut valid = PassageSet::new(
            &encoder,
            &corpus.valid,
            &valid_windows,
            config.max_tokens,
            &facts,
            &valid_genres,
            progress,
        );
        let centre = config.centre_context.then(|| ContextCentre::of(&train.vectors));
        if let Some(centre) = &centre {
            train.vectors.iter_mut().chain(valid.vectors.iter_mut()).for_each(|vector| centre.apply(vector));
        }
        let encode_seconds = started.elapsed().as_secs_f32();
        let encoder_embeddings = (encoder.manifest().word_dim == config.word_dim).then(|| encoder.word_embeddings());
        Ok(DecoderData {
            corpus,
            context_dim: encoder.dim(),
            train,
            valid,
            centre,
            facts,
            encode_seconds,
            encoder_embeddings,
        })
    }

    fn init(&self, data: &DecoderData, device: &Device) -> Result<(StoryDecoder, DecoderState), TrainError> {
        let config = &self.config.decoder;
        let vocab_size = data.corpus.vocabulary.len();
        let model_config = StoryDecoderConfig::new(vocab_size, config.word_dim, config.hidden_dim, data.context_dim)
            .with_per_step_context(config.per_step_context)
            .with_keyword_input(config.keywords > 0)
            .with_genres(data.facts.genres.len());
        let mut model = model_config.init(device);
        if let Some(embeddings) = &data.encoder_embeddings {
            // Start from the encoder's word embeddings: the same vocabulary, already trained on the same books.
            let table =
                Tensor::<2>::from_data(TensorData::new(embeddings.clone(), [vocab_size, config.word_dim]), device);
            model.embedding.weight = Param::from_tensor(table);
        }
        let state = DecoderState {
            position: Position::default(),
            decoder: config.clone(),
            vocabulary_hash: data.corpus.manifest.vocabulary.hash.clone(),
            context_dim: data.context_dim,
            genres: data.facts.genres.clone(),
        };
        Ok((model, state))
    }

    fn unchanged(saved: &DecoderState, now: &DecoderState) -> Vec<(String, bool)> {
        let mut checks = vec![
            ("the corpus vocabulary".to_string(), saved.vocabulary_hash == now.vocabulary_hash),
            ("the encoder's vector size".into(), saved.context_dim == now.context_dim),
            ("the genres of [genres]".into(), saved.genres == now.genres),
        ];
        checks.extend(saved.decoder.unchanged(&now.decoder));
        checks
    }

    fn task<'a>(&'a self, data: &'a DecoderData, device: &Device) -> DecoderTask<'a> {
        DecoderTask {
            train: &data.train,
            valid: &data.valid,
            config: &self.config.decoder,
            vocab_size: data.corpus.vocabulary.len(),
            device: device.clone(),
            plan: Vec::new(),
            log: TokenLossLog::resume(&self.run.out),
        }
    }

    fn export(
        &self,
        data: &DecoderData,
        model: &StoryDecoder,
        _state: &DecoderState,
        task: &DecoderTask<'_>,
        end: RunEnd,
    ) -> Result<DecoderTrainReport, TrainError> {
        let (train_loss, valid_loss) = (task.log.train_loss, task.log.valid_loss);
        export_decoder(self, data, model, end.steps, (train_loss, valid_loss))?;
        Ok(DecoderTrainReport {
            steps: end.steps,
            resumed_from: end.resumed_from,
            train_loss,
            valid_loss,
            train_passages: data.train.tokens.len(),
            valid_passages: data.valid.tokens.len(),
            encode_seconds: data.encode_seconds,
        })
    }
}

/// The story decoder's loss for the shared loop.
pub struct DecoderTask<'a> {
    train: &'a PassageSet,
    valid: &'a PassageSet,
    config: &'a DecoderConfig,
    vocab_size: usize,
    device: Device,
    plan: Vec<Vec<usize>>,
    log: TokenLossLog,
}

impl TrainingTask for DecoderTask<'_> {
    type Model = StoryDecoder;

    fn start_epoch(&mut self, epoch: u64) -> usize {
        self.plan = plan_epoch(&self.train.lengths, self.config.train.batch_size, self.config.train.seed, epoch);
        self.plan.len()
    }

    fn loss(&self, model: &StoryDecoder, index: usize, step: u64) -> (Tensor<1>, usize) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.train.seed ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let (vectors, inputs, padded) = self.train.batch(&self.plan[index], self.config, &mut rng, &self.device);
        let context = model.condition(vectors, &inputs);
        let mut targets = DecoderTargets::new(&padded, &self.device);
        let mut candidates = None;
        if self.config.sampled_softmax > 0 {
            let (words, mut positions) =
                sample_candidates(&[&padded], self.vocab_size, self.config.sampled_softmax, &mut rng, &self.device);
            targets.candidate_positions = positions.pop();
            candidates = Some(words);
        }
        let targets = targets.with_word_dropout(&padded, self.config.word_dropout, &mut rng, &self.device);
        let mut loss = model.loss(context.clone(), &targets, candidates.as_ref());
        if self.config.bag_of_words > 0.0 {
            loss = loss + model.bag_of_words_loss(context, &targets) * self.config.bag_of_words;
        }
        (loss, padded.lengths.iter().sum())
    }

    fn log(
        &mut self,
        model: &StoryDecoder,
        step: u64,
        window: &LossWindow,
        validate: bool,
        elapsed_seconds: f32,
    ) -> (String, String) {
        let valid_loss = if validate { validation_loss(model, self.valid, self.config) } else { None };
        self.log.line(step, window, valid_loss, elapsed_seconds)
    }

    fn validation_score(&self) -> Option<f32> {
        self.log.valid_loss
    }
}

/// Mean loss (full softmax) over the first `valid_batches` batches of held-out passages.
fn validation_loss(model: &StoryDecoder, valid: &PassageSet, config: &DecoderConfig) -> Option<f32> {
    if valid.tokens.is_empty() {
        return None;
    }
    let inference = model.valid();
    let device = crate::device::of_module(&inference);
    let plan = plan_epoch(&valid.lengths, config.train.batch_size, config.train.seed, 0);
    // The same keywords and genres at every validation, so losses compare.
    let mut rng = ChaCha8Rng::seed_from_u64(config.train.seed);
    let losses: Vec<f32> = plan
        .iter()
        .take(config.valid_batches)
        .map(|batch| {
            let (vectors, inputs, padded) = valid.batch(batch, config, &mut rng, &device);
            let condition = inference.condition(vectors, &inputs);
            inference.loss(condition, &DecoderTargets::new(&padded, &device), None).into_scalar()
        })
        .collect();
    Some(losses.iter().sum::<f32>() / losses.len() as f32)
}

fn export_decoder(
    request: &DecoderTrainRequest,
    data: &DecoderData,
    model: &StoryDecoder,
    steps: u64,
    (train_loss, valid_loss): (Option<f32>, Option<f32>),
) -> Result<(), TrainError> {
    let (corpus, out) = (&data.corpus, &request.run.out);
    // Stored in f16: half the size, and generation does not notice (widened back to f32 when loaded).
    export_weights(model, &out.join(DECODER_FILE), None, true)?;
    corpus.vocabulary.save(&out.join(TOKENIZER_FILE)).map_err(|error| store_error(out, error))?;
    let manifest = DecoderManifest {
        format: DECODER_FORMAT.into(),
        created_by: CreatedBy::now(request.run.command.clone()),
        corpus: corpus.dir.display().to_string(),
        encoder: request.encoder_dir.display().to_string(),
        vocabulary_size: corpus.vocabulary.len(),
        vocabulary_hash: corpus.manifest.vocabulary.hash.clone(),
        context_dim: data.context_dim,
        steps,
        final_train_loss: train_loss,
        final_valid_loss: valid_loss,
        config: request.config.decoder.clone(),
        context_centre: data.centre.clone(),
        held_out: Some(HeldOutBooks::of(corpus)),
        keywords: request.config.decoder.keywords > 0,
        genres: data.facts.genres.clone(),
    };
    write_json(&out.join(MANIFEST_FILE), &manifest)?;
    Ok(())
}
