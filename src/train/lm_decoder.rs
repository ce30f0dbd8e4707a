//! `storytool train-decoder` with `[decoder] kind = "lm"`: the steering of a frozen pretrained language
//! model ([`crate::model::lm_steering`]) trained to write passages of the novels back from their
//! skip-thought vectors, keywords and genres.
//!
//! The corpus's token streams are lowercased words of a 10k vocabulary, which is not what a language model
//! should learn to write: the passages are read again from the books (checked against the corpus's
//! hashes) with the same clean-up and sentence splitter, so they keep their capitals and rare words. Each
//! passage is `decoder.passage_sentences` consecutive sentences of a training book, taken evenly (at most
//! `decoder.lm.max_passages`), encoded once by the skip-thought encoder (the mean of its sentences' vectors,
//! centred like the GRU decoder's) and tokenized by the language model's tokenizer, closed by
//! `<|endoftext|>` when it was not cut. A batch row is `[prefix][genre tokens][keyword prompt][passage]`,
//! its keywords sampled afresh each step from the passage's own content words and its genre from its book's
//! (dropped for `decoder.genre_dropout` of rows), its vector replaced by the mean passage's for
//! `decoder.lm.vector_dropout` of rows; only the passage's tokens are scored.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::batches::plan_epoch;
use super::decoder::{DecoderTrainReport, books_with_genres};
use super::run::{
    LossWindow, MANIFEST_FILE, Position, RunState, TokenLossLog, TrainError, TrainingTask, export_weights,
};
use super::trainer::{RunEnd, RunOptions, Trainer, train};
use crate::config::{Config, DecoderConfig, TrainSchedule};
use crate::corpus::decode::decode;
use crate::corpus::manifest::{BookRecord, CreatedBy};
use crate::corpus::{Corpus, book, sentences};
use crate::encoder::SentenceEncoder;
use crate::language_model::PretrainedLm;
use crate::model::llama::LanguageModel;
use crate::model::lm_steering::{LmSteering, LmSteeringConfig};
use crate::progress::Progress;
use crate::story::decoder::{ContextCentre, HeldOutBooks};
use crate::story::genre_words::{BookWords, GenreWords};
use crate::story::lm_decoder::{
    BaseModel, LM_DECODER_FORMAT, LmDecoderManifest, STEERING_FILE, SteeringShape, keyword_prompt, passage_tokens,
};
use crate::story::passages::evenly;
use crate::text::content::distinct_content_words;
use crate::util::atomic::write_json;
use crate::util::hash::content_hash;

#[derive(Debug, Clone)]
pub struct LmDecoderTrainRequest {
    pub corpus_dir: PathBuf,
    pub encoder_dir: PathBuf,
    /// The pretrained model's GGUF.
    pub lm_path: PathBuf,
    pub config: Config,
    pub run: RunOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmDecoderState {
    #[serde(flatten)]
    position: Position,
    decoder: DecoderConfig,
    vocabulary_hash: String,
    base_model: String,
    context_dim: usize,
    genres: Vec<String>,
}

impl RunState for LmDecoderState {
    fn position(&mut self) -> &mut Position {
        &mut self.position
    }
}

/// Passages ready for batches.
pub struct LmPassages {
    /// Skip-thought vectors (centred when `decoder.centre_context`).
    pub vectors: Vec<Vec<f32>>,
    /// The passage in the language model's tokens, closed by the end token unless cut.
    pub tokens: Vec<Vec<u32>>,
    /// Its distinct content words: what keywords are sampled from.
    pub content: Vec<Vec<String>>,
    /// Its book's genres (indices into the decoder's genres).
    pub genres: Vec<Vec<usize>>,
    /// Its text, for evaluation.
    pub texts: Vec<String>,
}

/// One batch: vectors, genres, and each row's tokens with the number of prompt tokens before the passage.
pub struct LmBatch {
    pub vectors: Tensor<2>,
    pub genres: Vec<Option<usize>>,
    pub rows: Vec<(Vec<u32>, usize)>,
}

impl LmPassages {
    /// The passages `indices` with keywords and genres drawn by `rng`.
    pub fn batch(
        &self,
        indices: &[usize],
        config: &DecoderConfig,
        genre_names: &[String],
        tokenizer: &Tokenizer,
        rng: &mut impl Rng,
        device: &Device,
    ) -> LmBatch {
        let dim = self.vectors[0].len();
        let mut flat = Vec::with_capacity(indices.len() * dim);
        let mut genres = Vec::with_capacity(indices.len());
        let mut rows = Vec::with_capacity(indices.len());
        for &index in indices {
            // Zero is the mean passage's vector once centred: this row must be written from its keywords
            // and genre alone.
            if rng.random::<f32>() < config.lm.vector_dropout {
                flat.extend(std::iter::repeat_n(0.0, dim));
            } else {
                flat.extend_from_slice(&self.vectors[index]);
            }
            let mut words = self.content[index].clone();
            let wanted = rng.random_range(0..=config.keywords).min(words.len());
            words.partial_shuffle(rng, wanted);
            words.truncate(wanted);
            let dropped = rng.random::<f32>() < config.genre_dropout;
            let genre = if dropped { None } else { self.genres[index].choose(rng).copied() };
            genres.push(genre);
            let named = genre.filter(|_| config.lm.genre_text).and_then(|genre| genre_names.get(genre));
            let prompt = prompt_ids(tokenizer, named.map(String::as_str), &words);
            let mut ids = prompt.clone();
            ids.extend_from_slice(&self.tokens[index]);
            rows.push((ids, prompt.len()));
        }
        let vectors = Tensor::from_data(TensorData::new(flat, [indices.len(), dim]), device);
        LmBatch { vectors, genres, rows }
    }
}

/// The prompt's tokens (genre name and keywords).
pub fn prompt_ids(tokenizer: &Tokenizer, genre: Option<&str>, keywords: &[String]) -> Vec<u32> {
    let prompt = keyword_prompt(genre, keywords);
    if prompt.is_empty() {
        return Vec::new();
    }
    tokenizer.encode(prompt.as_str(), false).map(|encoding| encoding.get_ids().to_vec()).unwrap_or_default()
}

/// Summed negative log-likelihood of the passage tokens of `batch` and how many there are: the rows
/// follow the prefix, each output predicts the next input, and only outputs that predict a passage token
/// (not a prompt token, not padding) are scored, so the output layer runs on those alone.
pub fn passage_nll(lm: &LanguageModel, steering: &LmSteering, batch: &LmBatch) -> (Tensor<1>, usize) {
    let device = batch.vectors.device();
    let prefix = steering.prefix(batch.vectors.clone(), &batch.genres);
    let [rows, prefix_len, width] = prefix.dims();
    let longest = batch.rows.iter().map(|(ids, _)| ids.len()).max().unwrap_or(1).max(1);
    let mut ids = vec![0i64; rows * longest];
    let (mut picked, mut targets) = (Vec::new(), Vec::new());
    for (row, (tokens, prompt_len)) in batch.rows.iter().enumerate() {
        for (position, &token) in tokens.iter().enumerate() {
            ids[row * longest + position] = i64::from(token);
            if position >= *prompt_len {
                // The output at prefix_len - 1 + position predicts the token at `position`.
                picked.push((row * (prefix_len + longest) + prefix_len - 1 + position) as i64);
                targets.push(i64::from(token));
            }
        }
    }
    let count = picked.len();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, longest]), &device);
    let inputs = Tensor::cat(vec![prefix, lm.embed(tokens)], 1);
    let hidden = lm.forward_adapted(inputs, None, Some((&steering.lora, steering.lora_scale)));
    let hidden: Tensor<2> = hidden.reshape([rows * (prefix_len + longest), width]);
    let picked = Tensor::<1, Int>::from_data(TensorData::new(picked, [count]), &device);
    let hidden = hidden.select(0, picked);
    let logits = hidden.matmul(lm.embedding.weight.val().transpose());
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [count, 1]), &device);
    let nll = log_softmax(logits, 1).gather(1, targets).neg().sum();
    (nll, count)
}

/// Passages read from books (text, sentences, the book's genres), and each read book's content words.
type ReadPassages = (Vec<(String, Vec<String>, Vec<usize>)>, Vec<BookWords>);

/// Reads passages of `sentences_per` sentences from the books, at most `limit` taken evenly across them
/// (by the sentence counts the corpus recorded), with their text as written; with `count_words`, each
/// book read has its content words counted too (what [`GenreWords`] are made of).
fn read_passages(
    corpus: &Corpus,
    books: &[(&BookRecord, Vec<usize>)],
    sentences_per: usize,
    limit: usize,
    count_words: bool,
    progress: &dyn Progress,
) -> Result<ReadPassages, TrainError> {
    let windows: Vec<(usize, usize)> = books
        .iter()
        .enumerate()
        .flat_map(|(book, (record, _))| {
            (0..record.sentences as usize / sentences_per).map(move |window| (book, window))
        })
        .collect();
    let chosen = evenly(&windows, limit);
    let books_dir = PathBuf::from(&corpus.manifest.inputs.books_dir);
    let mut passages = Vec::with_capacity(chosen.len());
    let mut words = Vec::new();
    let mut at = 0;
    for (book, (record, genres)) in books.iter().enumerate() {
        let wanted: Vec<usize> =
            chosen[at..].iter().take_while(|(b, _)| *b == book).map(|&(_, window)| window).collect();
        at += wanted.len();
        if wanted.is_empty() {
            continue;
        }
        progress.set_message(&format!("reading passages: {} of {} books", book + 1, books.len()));
        let path = books_dir.join(&record.file);
        let bytes = std::fs::read(&path)
            .map_err(|error| TrainError::Input(format!("cannot read the book `{}`: {error}", path.display())))?;
        if content_hash(&bytes) != record.blake3 {
            return Err(TrainError::Input(format!(
                "the book `{}` changed since the corpus was ingested (its hash differs)\n\nhint: ingest the books again",
                path.display()
            )));
        }
        let (text, _) = decode(bytes)
            .map_err(|error| TrainError::Input(format!("cannot decode the book `{}`: {error:?}", path.display())))?;
        if count_words {
            words.push(BookWords::count(&text, genres.clone()));
        }
        let mut sentences_of_book = Vec::new();
        for paragraph in book::clean_paragraphs(&text).iter() {
            sentences::for_each_sentence(paragraph, |sentence| sentences_of_book.push(sentence.to_string()));
        }
        for window in wanted {
            let start = window * sentences_per;
            if let Some(window) = sentences_of_book.get(start..start + sentences_per) {
                passages.push((window.join(" "), window.to_vec(), genres.clone()));
            }
        }
    }
    Ok((passages, words))
}

/// Encodes and tokenizes read passages.
fn prepare(
    read: Vec<(String, Vec<String>, Vec<usize>)>,
    encoder: &SentenceEncoder,
    lm: &PretrainedLm,
    max_tokens: usize,
    progress: &dyn Progress,
) -> LmPassages {
    progress.set_message(&format!("encoding {} passages", read.len()));
    let mut passages = LmPassages {
        vectors: Vec::new(),
        tokens: Vec::new(),
        content: Vec::new(),
        genres: Vec::new(),
        texts: Vec::new(),
    };
    for chunk in read.chunks(256) {
        let sentences: Vec<&str> =
            chunk.iter().flat_map(|(_, sentences, _)| sentences.iter().map(String::as_str)).collect();
        let encoded = encoder.encode(&sentences);
        let mut next = encoded.into_iter();
        for (text, sentences, genres) in chunk {
            let mut mean = vec![0f32; encoder.dim()];
            for encoded in next.by_ref().take(sentences.len()) {
                for (sum, value) in mean.iter_mut().zip(&encoded.vector) {
                    *sum += value / sentences.len() as f32;
                }
            }
            passages.vectors.push(mean);
            passages.tokens.push(passage_tokens(lm, text, max_tokens));
            passages.content.push(distinct_content_words(text));
            passages.genres.push(genres.clone());
            passages.texts.push(text.clone());
        }
    }
    passages
}

pub fn train_lm_decoder(
    request: &LmDecoderTrainRequest,
    progress: &dyn Progress,
) -> Result<DecoderTrainReport, TrainError> {
    train(request, progress)
}

pub struct LmDecoderData {
    corpus: Corpus,
    lm: PretrainedLm,
    context_dim: usize,
    vocabulary_hash: String,
    genres: Vec<String>,
    train: LmPassages,
    valid: LmPassages,
    centre: Option<ContextCentre>,
    genre_words: GenreWords,
    prepare_seconds: f32,
}

impl Trainer for LmDecoderTrainRequest {
    type Data = LmDecoderData;
    type Model = LmSteering;
    type State = LmDecoderState;
    type Task<'a> = LmDecoderTask<'a>;
    type Report = DecoderTrainReport;

    fn options(&self) -> &RunOptions {
        &self.run
    }

    fn schedule(&self) -> &TrainSchedule {
        &self.config.decoder.lm.train
    }

    fn inputs(&self) -> Vec<&Path> {
        vec![&self.corpus_dir, &self.encoder_dir, &self.lm_path]
    }

    fn open(&self, progress: &dyn Progress) -> Result<LmDecoderData, TrainError> {
        let config = &self.config.decoder;
        let started = Instant::now();
        let corpus = Corpus::open(&self.corpus_dir)?;
        let encoder = SentenceEncoder::load(&self.encoder_dir, self.run.main_device())?;
        // The frozen model computes on the training device with autodiff, so gradients reach the prefix
        // through it, but none of its own weights asks for one.
        let training_device = self.run.main_device().clone().autodiff();
        let mut lm = PretrainedLm::load(&self.lm_path, &training_device)
            .map_err(|error| TrainError::Input(crate::util::error_chain(&error)))?;
        lm.model = lm.model.no_grad();
        let genres: Vec<String> =
            if config.genre_input { self.config.genres.keys().cloned().collect() } else { Vec::new() };
        let train_books = books_with_genres(&corpus, "train", &genres, &self.config);
        let valid_books = books_with_genres(&corpus, "valid", &genres, &self.config);
        let (read, book_words) =
            read_passages(&corpus, &train_books, config.passage_sentences, config.lm.max_passages, true, progress)?;
        let genre_words = GenreWords::of_books(&book_words, &genres);
        drop(book_words);
        if read.is_empty() {
            return Err(TrainError::NoExamples(format!(
                "no training book has {} consecutive sentences",
                config.passage_sentences
            )));
        }
        let mut train = prepare(read, &encoder, &lm, config.lm.max_tokens, progress);
        let (read, _) =
            read_passages(&corpus, &valid_books, config.passage_sentences, config.lm.valid_passages, false, progress)?;
        let mut valid = prepare(read, &encoder, &lm, config.lm.max_tokens, progress);
        let centre = config.centre_context.then(|| ContextCentre::of(&train.vectors));
        if let Some(centre) = &centre {
            train.vectors.iter_mut().chain(valid.vectors.iter_mut()).for_each(|vector| centre.apply(vector));
        }
        Ok(LmDecoderData {
            context_dim: encoder.dim(),
            vocabulary_hash: encoder.manifest().vocabulary_hash.clone(),
            corpus,
            lm,
            genres,
            train,
            valid,
            centre,
            genre_words,
            prepare_seconds: started.elapsed().as_secs_f32(),
        })
    }

    fn init(&self, data: &LmDecoderData, device: &Device) -> Result<(LmSteering, LmDecoderState), TrainError> {
        let lm_config = &self.config.decoder.lm;
        let config = &data.lm.config;
        let steering =
            LmSteeringConfig::new(data.context_dim, config.width, config.blocks, config.kv_heads * config.head_dim())
                .with_prefix_len(lm_config.prefix_len)
                .with_mapper_hidden(lm_config.mapper_hidden)
                .with_genres(data.genres.len())
                .with_genre_tokens(lm_config.genre_tokens)
                .with_lora_rank(lm_config.lora_rank)
                .with_lora_alpha(lm_config.lora_alpha)
                .init(device);
        let state = LmDecoderState {
            position: Position::default(),
            decoder: self.config.decoder.clone(),
            vocabulary_hash: data.vocabulary_hash.clone(),
            base_model: data.lm.hash.clone(),
            context_dim: data.context_dim,
            genres: data.genres.clone(),
        };
        Ok((steering, state))
    }

    fn unchanged(saved: &LmDecoderState, now: &LmDecoderState) -> Vec<(String, bool)> {
        let mut checks = vec![
            ("the encoder's vocabulary".to_string(), saved.vocabulary_hash == now.vocabulary_hash),
            ("the base language model".into(), saved.base_model == now.base_model),
            ("the encoder's vector size".into(), saved.context_dim == now.context_dim),
            ("the genres of [genres]".into(), saved.genres == now.genres),
            ("decoder.passage_sentences".into(), saved.decoder.passage_sentences == now.decoder.passage_sentences),
            ("decoder.keywords".into(), saved.decoder.keywords == now.decoder.keywords),
            ("decoder.centre_context".into(), saved.decoder.centre_context == now.decoder.centre_context),
        ];
        checks.extend(saved.decoder.lm.unchanged(&now.decoder.lm));
        checks
    }

    fn task<'a>(&'a self, data: &'a LmDecoderData, device: &Device) -> LmDecoderTask<'a> {
        LmDecoderTask {
            data,
            config: &self.config.decoder,
            device: device.clone(),
            plan: Vec::new(),
            log: TokenLossLog::resume(&self.run.out),
        }
    }

    fn export(
        &self,
        data: &LmDecoderData,
        model: &LmSteering,
        _state: &LmDecoderState,
        task: &LmDecoderTask<'_>,
        end: RunEnd,
    ) -> Result<DecoderTrainReport, TrainError> {
        let (train_loss, valid_loss) = (task.log.train_loss, task.log.valid_loss);
        let out = &self.run.out;
        export_weights(model, &out.join(STEERING_FILE), None, true)?;
        let lm_config = &self.config.decoder.lm;
        let manifest = LmDecoderManifest {
            format: LM_DECODER_FORMAT.into(),
            created_by: CreatedBy::now(self.run.command.clone()),
            corpus: self.corpus_dir.display().to_string(),
            encoder: self.encoder_dir.display().to_string(),
            vocabulary_hash: data.vocabulary_hash.clone(),
            context_dim: data.context_dim,
            base_model: BaseModel {
                file: self.lm_path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default(),
                blake3: data.lm.hash.clone(),
            },
            steering: SteeringShape {
                prefix_len: lm_config.prefix_len,
                mapper_hidden: lm_config.mapper_hidden,
                genre_tokens: lm_config.genre_tokens,
                lora_rank: lm_config.lora_rank,
                lora_alpha: lm_config.lora_alpha,
            },
            steps: end.steps,
            final_train_loss: train_loss,
            final_valid_loss: valid_loss,
            config: self.config.decoder.clone(),
            context_centre: data.centre.clone(),
            held_out: Some(HeldOutBooks::of(&data.corpus)),
            keywords: self.config.decoder.keywords > 0,
            genres: data.genres.clone(),
        };
        data.genre_words.write(out)?;
        write_json(&out.join(MANIFEST_FILE), &manifest)?;
        Ok(DecoderTrainReport {
            steps: end.steps,
            resumed_from: end.resumed_from,
            train_loss,
            valid_loss,
            train_passages: data.train.tokens.len(),
            valid_passages: data.valid.tokens.len(),
            encode_seconds: data.prepare_seconds,
        })
    }
}

pub struct LmDecoderTask<'a> {
    data: &'a LmDecoderData,
    config: &'a DecoderConfig,
    device: Device,
    plan: Vec<Vec<usize>>,
    log: TokenLossLog,
}

impl TrainingTask for LmDecoderTask<'_> {
    type Model = LmSteering;

    fn start_epoch(&mut self, epoch: u64) -> usize {
        let lengths: Vec<usize> = self.data.train.tokens.iter().map(Vec::len).collect();
        let schedule = &self.config.lm.train;
        self.plan = plan_epoch(&lengths, schedule.batch_size, schedule.seed, epoch);
        self.plan.len()
    }

    fn loss(&self, model: &LmSteering, index: usize, step: u64) -> (Tensor<1>, usize) {
        let seed = self.config.lm.train.seed ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let batch = self.data.train.batch(
            &self.plan[index],
            self.config,
            &self.data.genres,
            &self.data.lm.tokenizer,
            &mut rng,
            &self.device,
        );
        let (nll, count) = passage_nll(&self.data.lm.model, model, &batch);
        (nll / count.max(1) as f32, count)
    }

    fn log(
        &mut self,
        model: &LmSteering,
        step: u64,
        window: &LossWindow,
        validate: bool,
        elapsed_seconds: f32,
    ) -> (String, String) {
        let valid_loss = if validate { Some(self.validation_loss(model)) } else { None };
        self.log.line(step, window, valid_loss, elapsed_seconds)
    }

    fn validation_score(&self) -> Option<f32> {
        self.log.valid_loss
    }
}

impl LmDecoderTask<'_> {
    /// Mean loss per passage token of the held-out passages, with the same keywords and genres each time.
    fn validation_loss(&self, model: &LmSteering) -> f32 {
        let steering = model.valid();
        let lm = self.data.lm.model.valid();
        let device = crate::device::of_module(&steering);
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.lm.train.seed);
        let indices: Vec<usize> = (0..self.data.valid.tokens.len()).collect();
        let (mut total, mut count) = (0.0f64, 0usize);
        for chunk in indices.chunks(self.config.lm.train.batch_size) {
            let batch = self.data.valid.batch(
                chunk,
                self.config,
                &self.data.genres,
                &self.data.lm.tokenizer,
                &mut rng,
                &device,
            );
            let (nll, tokens) = passage_nll(&lm, &steering, &batch);
            total += f64::from(nll.into_scalar::<f32>());
            count += tokens;
        }
        (total / count.max(1) as f64) as f32
    }
}
