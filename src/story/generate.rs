//! `storytool generate`: the whole path from a photo (or caption text) to a story, with every model loaded
//! once, so a server can reuse one `Generator` for many requests.
//!
//! photo -> CNN -> VSE -> the `k` nearest bank captions -> their skip-thought vectors (stored in the bank)
//! -> `mean - caption bias + genre bias` -> story decoder beam search -> clean-up. A decoder trained with
//! keywords and genres is also given the captions' commonest content words and the story's genre.
//!
//! With a captioner (`ModelPaths::captioner`), the captions are written instead: photo -> CNN spatial map
//! -> captioner beam search -> every finished beam's caption -> the skip-thought encoder -> as above.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use image::DynamicImage;
use serde::Serialize;

use super::bias::{BiasError, StyleBias};
use super::cleanup::clean_up;
use super::decoder::{ContextCentre, DecoderError, load_decoder};
use crate::captioner::photo::{PhotoCaptioner, PhotoCaptionerError};
use crate::config::GenerateConfig;
use crate::encoder::{EncoderError, SentenceEncoder};
use crate::model::beam::{BeamSettings, Scorer, beam_search};
use crate::model::story_decoder::{ConditionInputs, StoryDecoder};
use crate::retrieval::photo::{PhotoRetriever, RetrieverError};
use crate::text::content::{content_ids, distinct_content_words, keywords};
use crate::text::vocab::{EOS_ID, UNK_ID, Vocabulary};
use crate::util::PathError;
use crate::util::cancel::{CancelFlag, Interrupted};
use crate::util::values::f32_values;

/// Where each model of a model set lives; `from_dir` gives the layout of `checkpoints/demo/`.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub encoder: PathBuf,
    pub decoder: PathBuf,
    pub bias: PathBuf,
    pub vse: PathBuf,
    pub bank: PathBuf,
    pub cnn: PathBuf,
    /// A Show-Attend-Tell captioner to write captions with instead of retrieving them (VSE and bank unused).
    pub captioner: Option<PathBuf>,
}

impl ModelPaths {
    pub fn from_dir(models: &Path, cnn: PathBuf) -> ModelPaths {
        ModelPaths {
            encoder: models.join("encoder"),
            decoder: models.join("decoder"),
            bias: models.join("bias"),
            vse: models.join("vse"),
            bank: models.join("caption-bank"),
            cnn,
            captioner: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error(transparent)]
    Bias(#[from] BiasError),
    #[error(transparent)]
    Retriever(#[from] RetrieverError),
    #[error(transparent)]
    Captioner(#[from] PhotoCaptionerError),
    #[error("the captioner finished no caption for the photo")]
    NoCaption,
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Decoder(#[from] DecoderError),
    #[error("{what} do not match: `{a}` has {a_value}, `{b}` has {b_value}")]
    Mismatch { what: &'static str, a: PathBuf, a_value: String, b: PathBuf, b_value: String },
    #[error(
        "the caption bank `{0}` has no skip-thought vectors of its captions\n\nhint: rebuild it with `storytool build-caption-bank --encoder DIR`"
    )]
    BankWithoutThoughts(PathBuf),
    #[error("unknown genre `{genre}`; the bias folder holds: {known}")]
    UnknownGenre { genre: String, known: String },
    #[error("no caption text given")]
    NoText,
    #[error("these models were loaded for text only: no photo path (VSE and bank, or captioner) to caption a photo")]
    NoPhotoModels,
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// What a story is made from.
#[derive(Debug, Clone)]
pub enum StoryInput {
    Image(DynamicImage),
    /// Caption sentences used as they are, instead of retrieved ones.
    Captions(Vec<String>),
}

/// Per-request settings (defaults from the `[generate]` config).
#[derive(Debug, Clone, PartialEq)]
pub struct StoryOptions {
    pub genre: String,
    pub k: usize,
    pub beam: usize,
    pub fallback_beam: usize,
    pub max_words: usize,
    pub min_words: usize,
    pub no_repeat_ngram: usize,
    pub length_penalty: f32,
    pub temperature: f32,
    pub seed: u64,
    /// See `generate.content_strength`, `generate.genre_strength` and `generate.bag_of_words`.
    pub content_strength: f32,
    pub genre_strength: f32,
    pub bag_of_words: f32,
    /// See `generate.keywords` and `generate.keyword_bonus`.
    pub keywords: usize,
    pub keyword_bonus: f32,
    /// See `generate.repetition_penalty`.
    pub repetition_penalty: f32,
}

impl StoryOptions {
    pub fn new(genre: &str, config: &GenerateConfig) -> StoryOptions {
        StoryOptions {
            genre: genre.to_string(),
            k: config.k,
            beam: config.beam,
            fallback_beam: config.fallback_beam,
            max_words: config.max_words,
            min_words: config.min_words,
            no_repeat_ngram: config.no_repeat_ngram,
            length_penalty: config.length_penalty,
            temperature: config.temperature,
            seed: 0,
            content_strength: config.content_strength,
            genre_strength: config.genre_strength,
            bag_of_words: config.bag_of_words,
            keywords: config.keywords,
            keyword_bonus: config.keyword_bonus,
            repetition_penalty: config.repetition_penalty,
        }
    }
}

/// A caption the story was made from.
#[derive(Debug, Clone, Serialize)]
pub struct UsedCaption {
    /// The bank's caption id, or `None` for given or written text.
    pub id: Option<String>,
    /// Cosine to the photo (retrieved), or log-probability (written).
    pub score: Option<f32>,
    pub text: Option<String>,
    /// The caption's content words (what keywords are chosen from).
    #[serde(skip)]
    pub words: Vec<String>,
}

impl UsedCaption {
    fn written(text: String, score: Option<f32>) -> UsedCaption {
        UsedCaption { id: None, score, words: distinct_content_words(&text), text: Some(text) }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    pub captions_ms: f64,
    pub decode_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Story {
    pub story: String,
    pub genre: String,
    pub words: usize,
    /// The beam width that produced it (the fallback width when the first search did not finish).
    pub beam: usize,
    /// The words the decoder was given to write about (empty for a decoder without keyword input).
    pub keywords: Vec<String>,
    pub captions: Vec<UsedCaption>,
    pub timings: Timings,
}

/// How a generator turns a photo into captions.
#[derive(Debug)]
pub enum PhotoPath {
    /// Loaded for text: photos are refused.
    TextOnly,
    /// CNN, VSE and caption bank: the nearest bank captions.
    Retrieval(PhotoRetriever),
    /// CNN and Show-Attend-Tell captioner: written captions.
    Captioner(PhotoCaptioner),
}

impl PhotoPath {
    pub fn retriever(&self) -> Option<&PhotoRetriever> {
        match self {
            PhotoPath::Retrieval(retriever) => Some(retriever),
            _ => None,
        }
    }

    pub fn captioner(&self) -> Option<&PhotoCaptioner> {
        match self {
            PhotoPath::Captioner(captioner) => Some(captioner),
            _ => None,
        }
    }
}

/// Every model, loaded once.
#[derive(Debug)]
pub struct Generator {
    pub encoder: SentenceEncoder,
    pub decoder: StoryDecoder,
    pub decoder_vocabulary: Vocabulary,
    pub bias: StyleBias,
    /// How photos become captions, if they are used at all.
    pub photos: PhotoPath,
    /// Per decoder word id: true for punctuation, which does not count toward a story's length.
    non_word: Vec<bool>,
    /// Per decoder word id: true for content words (what the repetition penalty counts).
    content: Vec<bool>,
    /// What the decoder reads its vectors through (`decoder.centre_context`), if it was trained so.
    context_centre: Option<ContextCentre>,
    /// The genres the decoder reads, in its input's order (empty: none).
    decoder_genres: Vec<String>,
    device: Device,
}

impl Generator {
    /// Loads the models onto `device` and checks that they fit together (vocabularies and vector sizes).
    pub fn load(paths: &ModelPaths, with_photos: bool, device: &Device) -> Result<Generator, GenerateError> {
        let encoder = SentenceEncoder::load(&paths.encoder, device)?;
        let (decoder, decoder_vocabulary, decoder_manifest) = load_decoder(&paths.decoder, device)?;
        let bias = StyleBias::load(&paths.bias)?;
        let encoder_hash = encoder.manifest().vocabulary_hash.clone();
        let mismatch = |what, a: &Path, a_value: String, b: &Path, b_value: String| GenerateError::Mismatch {
            what,
            a: a.to_path_buf(),
            a_value,
            b: b.to_path_buf(),
            b_value,
        };
        if decoder_manifest.vocabulary_hash != encoder_hash {
            return Err(mismatch(
                "vocabularies",
                &paths.encoder,
                encoder_hash,
                &paths.decoder,
                decoder_manifest.vocabulary_hash,
            ));
        }
        if decoder_manifest.context_dim != encoder.dim() {
            return Err(mismatch(
                "vector sizes",
                &paths.encoder,
                encoder.dim().to_string(),
                &paths.decoder,
                decoder_manifest.context_dim.to_string(),
            ));
        }
        if bias.manifest.vocabulary_hash != encoder_hash || bias.manifest.dim != encoder.dim() {
            return Err(mismatch(
                "encoders",
                &paths.encoder,
                format!("vocabulary {encoder_hash}, {}-d", encoder.dim()),
                &paths.bias,
                format!("vocabulary {}, {}-d", bias.manifest.vocabulary_hash, bias.manifest.dim),
            ));
        }
        let photos = if !with_photos {
            PhotoPath::TextOnly
        } else if let Some(dir) = &paths.captioner {
            PhotoPath::Captioner(PhotoCaptioner::load(&paths.cnn, dir, device)?)
        } else {
            let retriever = PhotoRetriever::load(&paths.cnn, &paths.vse, &paths.bank, device)?;
            let Some(info) = &retriever.bank.manifest.thoughts else {
                return Err(GenerateError::BankWithoutThoughts(paths.bank.clone()));
            };
            if info.vocabulary_hash != encoder_hash || info.dim != encoder.dim() {
                return Err(mismatch(
                    "encoders",
                    &paths.encoder,
                    format!("vocabulary {encoder_hash}, {}-d", encoder.dim()),
                    &paths.bank,
                    format!("vocabulary {}, {}-d", info.vocabulary_hash, info.dim),
                ));
            }
            PhotoPath::Retrieval(retriever)
        };
        let non_word = decoder_vocabulary.words().iter().map(|word| !word.chars().any(char::is_alphanumeric)).collect();
        let content = content_ids(&decoder_vocabulary);
        Ok(Generator {
            encoder,
            decoder,
            decoder_vocabulary,
            bias,
            photos,
            content,
            non_word,
            context_centre: decoder_manifest.context_centre,
            decoder_genres: decoder_manifest.genres,
            device: device.clone(),
        })
    }

    /// The style shift: `origin + genre_strength (genre bias - origin) + content_strength (mean(captions) -
    /// caption bias)`, where the origin is the decoder's mean passage vector (zero for a decoder without
    /// one). At strengths 1 this is neural-storyteller's `mean(captions) - caption bias + genre bias`. The
    /// result is then centred and scaled as the decoder was trained to read.
    pub fn style_shift(&self, thoughts: &[Vec<f32>], genre_bias: &[f32], options: &StoryOptions) -> Vec<f32> {
        let dim = self.encoder.dim();
        let mut captions = vec![0.0f32; dim];
        for vector in thoughts {
            for (sum, value) in captions.iter_mut().zip(vector) {
                *sum += value / thoughts.len() as f32;
            }
        }
        let origin = self.context_centre.as_ref().map_or_else(|| vec![0.0; dim], |centre| centre.mean.clone());
        let mut shifted: Vec<f32> = (0..dim)
            .map(|i| {
                origin[i]
                    + options.genre_strength * (genre_bias[i] - origin[i])
                    + options.content_strength * (captions[i] - self.bias.caption[i])
            })
            .collect();
        if let Some(centre) = &self.context_centre {
            centre.apply(&mut shifted);
        }
        shifted
    }

    /// The bag-of-words steering of a story whose decoder condition is `condition` (`[1, dim]`): `weight`
    /// times `log p_bow(w | condition) - log p_bow(w | mean passage)`, per word.
    fn steering(&self, condition: &Tensor<2>, weight: f32) -> Vec<f32> {
        // A centred decoder reads the mean passage as zero (for one trained without centring, zero is the
        // origin of the style shift: the comparison is then with a vector of no content at all), with no
        // keywords and no genre.
        let zero = Tensor::<2>::zeros([1, self.encoder.dim()], &self.device);
        let mean = self.decoder.condition(zero, &ConditionInputs::default());
        let own = f32_values(self.decoder.bag_of_words(condition.clone()));
        let base = f32_values(self.decoder.bag_of_words(mean));
        own.iter().zip(&base).map(|(own, base)| weight * (own - base)).collect()
    }

    /// The vector the decoder reads for a passage vector `vector` (centred and scaled if it was trained so).
    pub fn decoder_input(&self, mut vector: Vec<f32>) -> Vec<f32> {
        if let Some(centre) = &self.context_centre {
            centre.apply(&mut vector);
        }
        vector
    }

    /// The genres the bias folder holds.
    pub fn genres(&self) -> Vec<String> {
        self.bias.genres.keys().cloned().collect()
    }

    pub fn generate(&self, input: &StoryInput, options: &StoryOptions) -> Result<Story, GenerateError> {
        self.generate_cancellable(input, options, &CancelFlag::new())
    }

    /// [`generate`](Self::generate), stopping with [`Interrupted`] soon after `cancel` is set: before and
    /// after the photo's captions, and at every step of the story's beam search.
    pub fn generate_cancellable(
        &self,
        input: &StoryInput,
        options: &StoryOptions,
        cancel: &CancelFlag,
    ) -> Result<Story, GenerateError> {
        cancel.check()?;
        let started = Instant::now();
        if !self.bias.genres.contains_key(&options.genre) {
            return Err(GenerateError::UnknownGenre { genre: options.genre.clone(), known: self.genres().join(", ") });
        }
        let (captions, thoughts) = self.captions(input, options.k, &HashSet::new())?;
        cancel.check()?;
        let captions_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut story = self.write(captions, &thoughts, options, cancel)?;
        story.timings.captions_ms = captions_ms;
        story.timings.total_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(story)
    }

    /// The captions a story is made from and their skip-thought vectors: the given texts, the captioner's
    /// finished beams, or the `k` bank captions nearest to the photo (never a bank row in `excluded`: an
    /// evaluation leaves out the test photos' own captions).
    pub fn captions(
        &self,
        input: &StoryInput,
        k: usize,
        excluded: &HashSet<usize>,
    ) -> Result<(Vec<UsedCaption>, Vec<Vec<f32>>), GenerateError> {
        Ok(match (input, &self.photos) {
            (StoryInput::Captions(texts), _) => {
                if texts.iter().all(|text| text.trim().is_empty()) {
                    return Err(GenerateError::NoText);
                }
                let vectors = self.encoder.encode(texts).into_iter().map(|encoded| encoded.vector).collect();
                let used = texts.iter().map(|text| UsedCaption::written(text.clone(), None)).collect();
                (used, vectors)
            }
            (StoryInput::Image(_), PhotoPath::TextOnly) => return Err(GenerateError::NoPhotoModels),
            (StoryInput::Image(image), PhotoPath::Captioner(captioner)) => {
                let written = captioner.captions(image, captioner.captioner.manifest.config.beam);
                if written.is_empty() {
                    return Err(GenerateError::NoCaption);
                }
                let texts: Vec<String> = written.iter().map(|caption| caption.text.clone()).collect();
                let vectors = self.encoder.encode(&texts).into_iter().map(|encoded| encoded.vector).collect();
                let used = written
                    .into_iter()
                    .map(|caption| UsedCaption::written(caption.text, Some(caption.log_prob)))
                    .collect();
                (used, vectors)
            }
            (StoryInput::Image(image), PhotoPath::Retrieval(retriever)) => {
                let thoughts = retriever.bank.thoughts.as_ref().expect("checked at load");
                let query = retriever.image_vector(image);
                let nearest = retriever.bank.nearest_where(&query, k.max(1), |row| !excluded.contains(&row));
                let vectors = nearest.iter().map(|&(row, _)| thoughts.row(row).to_vec()).collect();
                let used = nearest
                    .iter()
                    .map(|&(row, score)| UsedCaption {
                        id: Some(retriever.bank.ids[row].clone()),
                        score: Some(score),
                        text: None,
                        words: retriever.bank.keywords.as_ref().map_or_else(Vec::new, |keywords| {
                            keywords[row].split_whitespace().map(String::from).collect()
                        }),
                    })
                    .collect();
                (used, vectors)
            }
        })
    }

    /// A story in `options.genre` from captions and their vectors: the style shift, the decoder's beam
    /// search (retried wider when nothing finishes), the clean-up.
    pub fn write(
        &self,
        captions: Vec<UsedCaption>,
        thoughts: &[Vec<f32>],
        options: &StoryOptions,
        cancel: &CancelFlag,
    ) -> Result<Story, GenerateError> {
        let Some(genre_bias) = self.bias.genres.get(&options.genre) else {
            return Err(GenerateError::UnknownGenre { genre: options.genre.clone(), known: self.genres().join(", ") });
        };
        let decoding = Instant::now();
        let shifted = self.style_shift(thoughts, genre_bias, options);
        let vector = Tensor::<2>::from_data(TensorData::new(shifted, [1, self.encoder.dim()]), &self.device);
        // Chosen for a decoder that reads them, and for the keyword pull, which works with any decoder.
        let keywords = if options.keywords > 0 && (self.decoder.keyword_input || options.keyword_bonus > 0.0) {
            let words: Vec<Vec<String>> = captions.iter().map(|caption| caption.words.clone()).collect();
            keywords(&words, &self.decoder_vocabulary, options.keywords)
        } else {
            Vec::new()
        };
        let genre: Vec<f32> = self
            .decoder_genres
            .iter()
            .map(|name| if *name == options.genre { options.genre_strength } else { 0.0 })
            .collect();
        let inputs = ConditionInputs { keywords: vec![keywords.clone()], genres: vec![genre] };
        let context = self.decoder.condition(vector, &inputs);
        let mut settings = BeamSettings {
            beam: options.beam,
            max_words: options.max_words,
            min_words: options.min_words,
            no_repeat_ngram: options.no_repeat_ngram,
            length_penalty: options.length_penalty,
            end: EOS_ID,
            banned: vec![UNK_ID],
            non_word: self.non_word.clone(),
            temperature: options.temperature,
            seed: options.seed,
            no_immediate_repeat: true,
            cancel: Some(cancel.clone()),
        };
        let steering = (options.bag_of_words > 0.0).then(|| self.steering(&context, options.bag_of_words));
        let pull = KeywordPull {
            keywords: keywords.clone(),
            bonus: options.keyword_bonus,
            repetition: options.repetition_penalty,
            content: &self.content,
        };
        let mut found = beam_search(
            &mut DecoderScorer::new(&self.decoder, context.clone(), steering.clone(), pull.clone()),
            &settings,
        );
        if found.is_none() && options.fallback_beam > options.beam {
            settings.beam = options.fallback_beam;
            found = beam_search(&mut DecoderScorer::new(&self.decoder, context, steering, pull), &settings);
        }
        cancel.check()?;
        let words = found.map(|finished| finished.words).unwrap_or_default();
        let mut tokens: Vec<&str> = words.iter().filter_map(|&id| self.decoder_vocabulary.word(id)).collect();
        cut_to_last_sentence(&mut tokens, options.min_words);
        let story = clean_up(&tokens);
        let decode_ms = decoding.elapsed().as_secs_f64() * 1e3;
        Ok(Story {
            words: story.split_whitespace().count(),
            story,
            genre: options.genre.clone(),
            beam: settings.beam,
            keywords: keywords.iter().filter_map(|&id| self.decoder_vocabulary.word(id)).map(String::from).collect(),
            captions,
            timings: Timings { captions_ms: 0.0, decode_ms, total_ms: decode_ms },
        })
    }
}

/// A story stopped by the length limit ends mid-sentence: cut it after its last full sentence, when enough
/// words are left.
fn cut_to_last_sentence(tokens: &mut Vec<&str>, min_words: usize) {
    if tokens.last().is_some_and(|token| matches!(*token, "." | "!" | "?" | "\"")) {
        return;
    }
    let Some(end) = tokens.iter().rposition(|token| matches!(*token, "." | "!" | "?")) else { return };
    let words = tokens[..=end].iter().filter(|token| token.chars().any(char::is_alphanumeric)).count();
    if words >= min_words {
        tokens.truncate(end + 1);
    }
}

/// Weighted decoding: each keyword's log-probability gains `bonus` until the hypothesis has written it, so
/// a story is pulled to use every keyword once; and each content word (`content[id]`) loses `repetition`
/// for every time the hypothesis has already written it (the small decoder otherwise loops on one noun).
#[derive(Debug, Clone, Default)]
struct KeywordPull<'a> {
    keywords: Vec<u32>,
    bonus: f32,
    repetition: f32,
    content: &'a [bool],
}

/// The story decoder behind the beam search's [`Scorer`], with an optional per-word bonus added to every
/// step's log-probabilities, and the keyword pull.
struct DecoderScorer<'a> {
    decoder: &'a StoryDecoder,
    context: Tensor<2>,
    state: Option<Tensor<2>>,
    steering: Option<Vec<f32>>,
    pull: KeywordPull<'a>,
    /// Per live hypothesis: the content words it has written.
    written: Vec<Vec<u32>>,
}

impl<'a> DecoderScorer<'a> {
    fn new(
        decoder: &'a StoryDecoder,
        context: Tensor<2>,
        steering: Option<Vec<f32>>,
        pull: KeywordPull<'a>,
    ) -> DecoderScorer<'a> {
        DecoderScorer { decoder, context, state: None, steering, pull, written: vec![Vec::new()] }
    }

    /// Follows the hypotheses to their new rows and records the content words (and keywords) they just wrote.
    fn track_words(&mut self, parents: &[usize], last_words: Option<&[u32]>) {
        self.written = parents
            .iter()
            .enumerate()
            .map(|(row, &parent)| {
                let mut written = self.written.get(parent).cloned().unwrap_or_default();
                if let Some(&word) = last_words.and_then(|words| words.get(row)) {
                    let content = self.pull.content.get(word as usize).copied().unwrap_or(false);
                    if content || self.pull.keywords.contains(&word) {
                        written.push(word);
                    }
                }
                written
            })
            .collect();
    }

    /// Adds the keyword bonus and the repetition penalty to one hypothesis's scores.
    fn pull(&self, row: &mut [f32], written: &[u32]) {
        if self.pull.bonus > 0.0 {
            for &keyword in self.pull.keywords.iter().filter(|keyword| !written.contains(keyword)) {
                if let Some(value) = row.get_mut(keyword as usize) {
                    *value += self.pull.bonus;
                }
            }
        }
        if self.pull.repetition > 0.0 {
            for &word in written {
                if let Some(value) = row.get_mut(word as usize) {
                    *value -= self.pull.repetition;
                }
            }
        }
    }
}

impl Scorer for DecoderScorer<'_> {
    fn next(&mut self, parents: &[usize], last_words: Option<&[u32]>) -> Vec<Vec<f32>> {
        let device = self.context.device();
        let rows = parents.len();
        let state = match self.state.take() {
            None => self.decoder.start(self.context.clone()).repeat_dim(0, rows),
            Some(state) => {
                let index: Vec<i64> = parents.iter().map(|&parent| parent as i64).collect();
                state.select(0, Tensor::<1, Int>::from_data(TensorData::new(index, [rows]), &device))
            }
        };
        let context = self.context.clone().repeat_dim(0, rows);
        let step = self.decoder.step(last_words, state, &context);
        self.state = Some(step.state);
        let [_, vocab] = step.log_probs.dims();
        let values = f32_values(step.log_probs);
        self.track_words(parents, last_words);
        values
            .chunks(vocab)
            .zip(&self.written)
            .map(|(row, written)| {
                let mut row = match &self.steering {
                    Some(bonus) => row.iter().zip(bonus).map(|(log_prob, bonus)| log_prob + bonus).collect(),
                    None => row.to_vec(),
                };
                self.pull(&mut row, written);
                row
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::story_decoder::StoryDecoderConfig;

    #[test]
    fn the_keyword_pull_lasts_until_a_hypothesis_writes_the_keyword() {
        let device = Device::flex();
        let decoder = StoryDecoderConfig::new(12, 4, 8, 3).with_per_step_context(true).init(&device);
        let context = Tensor::<2>::zeros([1, 3], &device);
        let pull = KeywordPull { keywords: vec![5, 7], bonus: 50.0, repetition: 0.0, content: &[false; 12] };
        let mut pulled = DecoderScorer::new(&decoder, context.clone(), None, pull);
        let mut plain = DecoderScorer::new(&decoder, context, None, KeywordPull::default());
        let gain =
            |pulled: &[Vec<f32>], plain: &[Vec<f32>], row: usize, word: usize| pulled[row][word] - plain[row][word];

        let (first, base) = (pulled.next(&[0], None), plain.next(&[0], None));
        assert!((gain(&first, &base, 0, 5) - 50.0).abs() < 1e-3 && (gain(&first, &base, 0, 7) - 50.0).abs() < 1e-3);
        assert!(gain(&first, &base, 0, 6).abs() < 1e-3);

        // Two hypotheses from the same parent: one wrote keyword 5, the other a plain word.
        let (second, base) = (pulled.next(&[0, 0], Some(&[5, 3])), plain.next(&[0, 0], Some(&[5, 3])));
        assert!(gain(&second, &base, 0, 5).abs() < 1e-3, "5 is used up in row 0");
        assert!((gain(&second, &base, 0, 7) - 50.0).abs() < 1e-3);
        assert!((gain(&second, &base, 1, 5) - 50.0).abs() < 1e-3, "row 1 has not written 5");

        // Rows follow their parents: row 0 now extends old row 1 (5 still open), row 1 extends old row 0.
        let (third, base) = (pulled.next(&[1, 0], Some(&[2, 7])), plain.next(&[1, 0], Some(&[2, 7])));
        assert!((gain(&third, &base, 0, 5) - 50.0).abs() < 1e-3 && (gain(&third, &base, 0, 7) - 50.0).abs() < 1e-3);
        assert!(gain(&third, &base, 1, 5).abs() < 1e-3 && gain(&third, &base, 1, 7).abs() < 1e-3);
    }

    #[test]
    fn each_earlier_use_of_a_content_word_costs_the_repetition_penalty() {
        let device = Device::flex();
        let decoder = StoryDecoderConfig::new(12, 4, 8, 3).init(&device);
        let context = Tensor::<2>::zeros([1, 3], &device);
        let mut content = vec![false; 12];
        content[3] = true;
        let pull = KeywordPull { keywords: Vec::new(), bonus: 0.0, repetition: 2.0, content: &content };
        let mut penalised = DecoderScorer::new(&decoder, context.clone(), None, pull);
        let mut plain = DecoderScorer::new(&decoder, context, None, KeywordPull::default());
        penalised.next(&[0], None);
        plain.next(&[0], None);
        // Row 0 wrote the content word 3, then 3 again; word 4 is not a content word and costs nothing.
        penalised.next(&[0], Some(&[3]));
        plain.next(&[0], Some(&[3]));
        let (after, base) = (penalised.next(&[0], Some(&[3])), plain.next(&[0], Some(&[3])));
        assert!((after[0][3] - base[0][3] + 4.0).abs() < 1e-3, "two earlier uses cost 2 x 2");
        let (after, base) = (penalised.next(&[0], Some(&[4])), plain.next(&[0], Some(&[4])));
        assert!((after[0][4] - base[0][4]).abs() < 1e-3 && (after[0][3] - base[0][3] + 4.0).abs() < 1e-3);
    }
}
