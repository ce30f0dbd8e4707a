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

use burn::tensor::Device;
use image::DynamicImage;
use serde::Serialize;

use super::bias::{BiasError, StyleBias};
use super::decoder::DecoderError;
use super::lm_decoder::default_lm_path;
use super::writer::{StoryEvent, StoryWriter, Watch};
use crate::captioner::photo::{PhotoCaptioner, PhotoCaptionerError};
use crate::config::{GenerateConfig, Strategy};
use crate::encoder::{EncoderError, SentenceEncoder};
use crate::retrieval::photo::{PhotoRetriever, RetrieverError};
use crate::text::content::distinct_content_words;
use crate::util::PathError;
use crate::util::cancel::{CancelFlag, Interrupted};

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
    /// The pretrained language model a `kind = "lm"` decoder steers (default: `$STORYTOOL_LM_WEIGHTS`, then
    /// the file `scripts/fetch-lm.sh` fetches); unused by a GRU decoder.
    pub lm: Option<PathBuf>,
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
            lm: default_lm_path(),
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
    /// See `generate.strategy` and `generate.top_p` (language-model decoders).
    pub strategy: Strategy,
    pub top_p: f32,
    /// See `generate.guidance`.
    pub guidance: f32,
    /// See `generate.genre_words`, `generate.genre_word_limit` and `generate.pull_spacing`.
    pub genre_words: f32,
    pub genre_word_limit: usize,
    pub pull_spacing: usize,
    /// See `generate.lm_keyword_bonus`.
    pub lm_keyword_bonus: f32,
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
            strategy: config.strategy,
            top_p: config.top_p,
            guidance: config.guidance,
            genre_words: config.genre_words,
            genre_word_limit: config.genre_word_limit,
            pull_spacing: config.pull_spacing,
            lm_keyword_bonus: config.lm_keyword_bonus,
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
    /// The story decoder, of either kind.
    pub decoder: StoryWriter,
    pub bias: StyleBias,
    /// How photos become captions, if they are used at all.
    pub photos: PhotoPath,
}

impl Generator {
    /// Loads the models onto `device` and checks that they fit together (vocabularies and vector sizes).
    pub fn load(paths: &ModelPaths, with_photos: bool, device: &Device) -> Result<Generator, GenerateError> {
        let encoder = SentenceEncoder::load(&paths.encoder, device)?;
        let decoder = StoryWriter::load(&paths.decoder, paths.lm.as_deref(), device)?;
        let bias = StyleBias::load(&paths.bias)?;
        let encoder_hash = encoder.manifest().vocabulary_hash.clone();
        let mismatch = |what, a: &Path, a_value: String, b: &Path, b_value: String| GenerateError::Mismatch {
            what,
            a: a.to_path_buf(),
            a_value,
            b: b.to_path_buf(),
            b_value,
        };
        if decoder.vocabulary_hash() != encoder_hash {
            return Err(mismatch(
                "vocabularies",
                &paths.encoder,
                encoder_hash,
                &paths.decoder,
                decoder.vocabulary_hash().to_string(),
            ));
        }
        if decoder.context_dim() != encoder.dim() {
            return Err(mismatch(
                "vector sizes",
                &paths.encoder,
                encoder.dim().to_string(),
                &paths.decoder,
                decoder.context_dim().to_string(),
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
        Ok(Generator { encoder, decoder, bias, photos })
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
        let origin = self.decoder.context_centre().map_or_else(|| vec![0.0; dim], |centre| centre.mean.clone());
        let mut shifted: Vec<f32> = (0..dim)
            .map(|i| {
                origin[i]
                    + options.genre_strength * (genre_bias[i] - origin[i])
                    + options.content_strength * (captions[i] - self.bias.caption[i])
            })
            .collect();
        if let Some(centre) = self.decoder.context_centre() {
            centre.apply(&mut shifted);
        }
        shifted
    }

    /// The vector the decoder reads for a passage vector `vector` (centred and scaled if it was trained so).
    pub fn decoder_input(&self, mut vector: Vec<f32>) -> Vec<f32> {
        if let Some(centre) = self.decoder.context_centre() {
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
        self.generate_watched(input, options, cancel, &mut |_| {})
    }

    /// [`generate_cancellable`](Self::generate_cancellable), showing `watch` the captions as soon as they
    /// are found and the story as it is written (`generate --stream`, `serve`'s streamed answers).
    pub fn generate_watched(
        &self,
        input: &StoryInput,
        options: &StoryOptions,
        cancel: &CancelFlag,
        watch: &mut Watch<'_>,
    ) -> Result<Story, GenerateError> {
        cancel.check()?;
        let started = Instant::now();
        if !self.bias.genres.contains_key(&options.genre) {
            return Err(GenerateError::UnknownGenre { genre: options.genre.clone(), known: self.genres().join(", ") });
        }
        let (captions, thoughts) = self.captions(input, options.k, &HashSet::new())?;
        cancel.check()?;
        let captions_ms = started.elapsed().as_secs_f64() * 1e3;
        watch(StoryEvent::Captions(&captions));
        let mut story = self.write(captions, &thoughts, options, cancel, watch)?;
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
        watch: &mut Watch<'_>,
    ) -> Result<Story, GenerateError> {
        let Some(genre_bias) = self.bias.genres.get(&options.genre) else {
            return Err(GenerateError::UnknownGenre { genre: options.genre.clone(), known: self.genres().join(", ") });
        };
        let decoding = Instant::now();
        let shifted = self.style_shift(thoughts, genre_bias, options);
        let words: Vec<Vec<String>> = captions.iter().map(|caption| caption.words.clone()).collect();
        let written = self.decoder.write(shifted, &words, options, cancel, watch)?;
        let decode_ms = decoding.elapsed().as_secs_f64() * 1e3;
        Ok(Story {
            words: written.story.split_whitespace().count(),
            story: written.story,
            genre: options.genre.clone(),
            beam: written.beam,
            keywords: written.keywords,
            captions,
            timings: Timings { captions_ms: 0.0, decode_ms, total_ms: decode_ms },
        })
    }
}
