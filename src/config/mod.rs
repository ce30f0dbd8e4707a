//! Typed settings for every stage, read from `configs/*.toml` with single keys overridable from the CLI.
//!
//! One file holds every setting of every stage (the role of Pix2Story's `config.py`). Unknown keys are an
//! error that names the key and the file, so a typo never silently falls back to a default. Keys left out
//! take the defaults of `configs/demo.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod schedule;

pub use schedule::{TrainSchedule, config_with_lifted_schedule, section_with_lifted_schedule};

/// Every setting of every stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How books become a corpus (`storytool ingest`).
    pub corpus: CorpusConfig,
    /// The skip-thought encoder and its training (`storytool train-encoder`).
    pub encoder: EncoderConfig,
    /// The visual-semantic embedding and its training (`storytool train-vse`).
    pub vse: VseConfig,
    /// The Show-Attend-Tell captioner and its training (`storytool train-captioner`).
    pub captioner: CaptionerConfig,
    /// The story decoder and its training (`storytool train-decoder`).
    pub decoder: DecoderConfig,
    /// Style bias vectors (`storytool compute-bias`).
    pub bias: BiasConfig,
    /// Story generation (`storytool generate`).
    pub generate: GenerateConfig,
    /// Inputs and outputs of `storytool pipeline` (every stage from raw data to stories).
    pub pipeline: PipelineConfig,
    /// Where models compute (`--device` and `$STORYTOOL_DEVICE` come first).
    pub device: DeviceConfig,
    /// The product's genres, each a set of catalogue tags: `thriller = ["thriller", "mystery"]`.
    pub genres: BTreeMap<String, Vec<String>>,
}

/// Where every command that computes runs its models. Not part of any stage's fingerprint: artifacts are
/// the same whatever device made them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// `cpu`, `cuda`, `cuda:N`, `wgpu` or `wgpu:N`; a list of one backend's devices (`cuda:0,cuda:1`) trains
    /// the encoder data-parallel. GPU backends need a binary built with `--features cuda` or `wgpu`.
    pub select: String,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig { select: "cpu".to_string() }
    }
}

/// Settings of `storytool ingest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorpusConfig {
    /// Vocabulary size including the two reserved ids `<eos>` (0) and `<unk>` (1). Skip-thoughts used 20,000.
    /// A corpus with fewer distinct words gets a smaller vocabulary; later stages read the real size.
    pub vocab_size: usize,
    /// Lowercase text before tokenizing (a smaller vocabulary; the story clean-up restores capitals).
    pub lowercase: bool,
    /// Books held out for validation, chosen by content hash so the choice is stable across runs.
    /// At most half the books are held out.
    pub valid_books: usize,
}

/// Settings of `storytool train-encoder`. The paper's values are in `configs/paper.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// Word embedding size (paper: 620).
    pub word_dim: usize,
    /// GRU state size, the size of a sentence vector (paper: 2400).
    pub hidden_dim: usize,
    /// Sentences are cut to this many tokens before their `<eos>` (paper: 30).
    pub max_tokens: usize,
    /// Give the decoders the sentence vector at every step, not only as their initial state.
    pub per_step_context: bool,
    /// Bi-skip: half the vector from a forward GRU, half from a backward one (`hidden_dim` must be even).
    pub bidirectional: bool,
    /// Words scored per batch by a sampled softmax in training (the batch's targets plus random others);
    /// 0 scores the whole vocabulary. Validation always uses the whole vocabulary.
    pub sampled_softmax: usize,
    /// Adaptive softmax (Grave et al. 2017) cutoffs in the frequency-ranked vocabulary, e.g. `[2000, 6000]`:
    /// a head of the 2,000 most frequent words and tail clusters 2,000-5,999 and 6,000 to the end, each scored
    /// through a smaller projection. Exact over the whole vocabulary, and cheaper than the full softmax for
    /// frequent words. Empty (the default): a full output layer. Needs `sampled_softmax = 0`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adaptive_softmax: Vec<usize>,
    /// Batches of held-out triples in each validation.
    pub valid_batches: usize,
    /// Batch, optimizer, seed and step counts (`[encoder.train]`).
    pub train: TrainSchedule,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            word_dim: 128,
            hidden_dim: 256,
            max_tokens: 30,
            train: TrainSchedule {
                batch_size: 64,
                learning_rate: 1e-3,
                clip_norm: 5.0,
                seed: 42,
                steps: 3000,
                validate_every: 250,
                checkpoint_every: 250,
            },
            per_step_context: false,
            bidirectional: false,
            sampled_softmax: 1024,
            adaptive_softmax: Vec::new(),
            valid_batches: 20,
        }
    }
}

/// Settings of `storytool train-vse` (Kiros et al.'s VSE; VSE++'s max-violation loss as an option).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VseConfig {
    /// Word embedding size; must equal the word vectors' size when `--word-vectors` initialises them
    /// (GloVe 6B 50d: 50; paper: 300).
    pub word_dim: usize,
    /// Size of the joint space, also the caption GRU's state (paper: 1024).
    pub embed_dim: usize,
    /// Captions are cut to this many tokens.
    pub max_tokens: usize,
    /// Caption vocabulary size including `<eos>` and `<unk>`, counted over every caption of the inputs.
    pub vocab_size: usize,
    /// Hinge margin (paper: 0.2).
    pub margin: f32,
    /// VSE++: only the hardest negative of each pair counts, instead of the sum over all negatives.
    pub max_violation: bool,
    /// Percent of images held out for validation and for the test split (chosen by a hash of the image key).
    pub valid_percent: u32,
    pub test_percent: u32,
    /// Batch, optimizer, seed and step counts (`[vse.train]`).
    pub train: TrainSchedule,
}

/// Settings of `storytool train-captioner`: Show, Attend and Tell (Xu et al. 2015) with soft attention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptionerConfig {
    /// Word embedding size, also the size of the deep output layer (paper: 512).
    pub word_dim: usize,
    /// LSTM state size (paper: 1800 on COCO).
    pub hidden_dim: usize,
    /// Size of the attention MLP's hidden layer.
    pub attention_dim: usize,
    /// Dropout before the output layer during training.
    pub dropout: f64,
    /// Weight of the doubly stochastic attention penalty `sum_i (1 - sum_t alpha_ti)^2` (paper: 1; at 1 the
    /// demo captioner's attention stayed nearly flat, at 0.1 it leans with the same loss and BLEU).
    pub attention_penalty: f32,
    /// Most words kept, `<eos>` and `<unk>` included, counted over the training images' captions.
    pub vocab_size: usize,
    /// Words seen fewer times in the training captions become `<unk>`.
    pub min_word_count: u64,
    /// Captions are cut to this many tokens for training.
    pub max_tokens: usize,
    /// Percent of images held out for validation and test (the same hash as the VSE's split: keep them equal
    /// to the VSE's so that `evaluate captioner` compares on images neither model saw).
    pub valid_percent: u32,
    pub test_percent: u32,
    /// Beam width for `caption`, `evaluate captioner` and `generate --captioner` (its finished beams are the
    /// captions a story is made from).
    pub beam: usize,
    /// Longest written caption, in words.
    pub max_words: usize,
    /// No n-gram of this length may repeat within a written caption (0 = allowed): small captioners loop
    /// ("a red and white shirt and a red and white shirt ...").
    pub no_repeat_ngram: usize,
    /// Batch, optimizer, seed and step counts (`[captioner.train]`).
    pub train: TrainSchedule,
}

impl Default for CaptionerConfig {
    fn default() -> Self {
        CaptionerConfig {
            word_dim: 256,
            hidden_dim: 512,
            attention_dim: 256,
            dropout: 0.5,
            attention_penalty: 0.1,
            vocab_size: 10_000,
            min_word_count: 3,
            max_tokens: 20,
            train: TrainSchedule {
                batch_size: 32,
                learning_rate: 1e-3,
                clip_norm: 5.0,
                seed: 42,
                steps: 700,
                validate_every: 100,
                checkpoint_every: 250,
            },
            valid_percent: 10,
            test_percent: 15,
            beam: 3,
            max_words: 20,
            no_repeat_ngram: 3,
        }
    }
}

/// Settings of `storytool train-decoder`: a GRU that writes a passage of a novel from its skip-thought vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderConfig {
    /// `gru`: the paper's conditional GRU, trained from scratch on the corpus's words. `lm`: a pretrained
    /// small language model (SmolLM2, `scripts/fetch-lm.sh`) steered by the vector, keywords and genre, with
    /// its own settings in `[decoder.lm]`. The passage, keyword, genre and centring keys here serve both.
    pub kind: DecoderKind,
    /// Consecutive sentences per training passage (Pix2Story: short passages).
    pub passage_sentences: usize,
    /// Passages are cut to this many tokens.
    pub max_tokens: usize,
    pub word_dim: usize,
    /// GRU state size (Pix2Story: 2400).
    pub hidden_dim: usize,
    /// Feed the conditioning vector beside every input word, not only through the initial state.
    pub per_step_context: bool,
    /// Word dropout (Bowman et al. 2016): the share of input words replaced by `<unk>` in training, so the
    /// passage cannot be written from the words before it alone.
    pub word_dropout: f32,
    /// Weight of the bag-of-words loss (Zhao et al. 2017): the starting state must predict the passage's
    /// words. 0 turns it off.
    pub bag_of_words: f32,
    /// Centre and scale the conditioning vectors by the training passages' mean and spread (stored with the
    /// decoder and applied at generation): what differs between passages is then what the decoder sees.
    pub centre_context: bool,
    /// Keywords: each training passage comes with up to this many of its own content words (0 to this many,
    /// uniformly), read as their mean embedding; at generation time the photo's caption words take their
    /// place. 0: the decoder reads no keywords.
    pub keywords: usize,
    /// Genre input: the decoder reads the genres of each passage's book (the config's `[genres]`) as a
    /// multi-hot vector, and at generation time the story's genre.
    pub genre_input: bool,
    /// The share of training passages given no genre (with `genre_input`), so that the decoder also writes
    /// for a genre it does not know.
    pub genre_dropout: f32,
    /// Training passages, taken evenly across the corpus's training books (each is encoded once, up front).
    pub max_passages: usize,
    /// Words scored per batch by a sampled softmax in training; 0 = the whole vocabulary.
    pub sampled_softmax: usize,
    pub valid_batches: usize,
    /// Batch, optimizer, seed and step counts (`[decoder.train]`).
    pub train: TrainSchedule,
    /// The language-model decoder (`kind = "lm"`).
    pub lm: LmDecoderConfig,
}

/// Which story decoder `train-decoder` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderKind {
    #[default]
    Gru,
    Lm,
}

/// `[decoder.lm]`: what is trained on top of the frozen language model, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmDecoderConfig {
    /// Input vectors the skip-thought vector is mapped to, before the prompt (ClipCap: 10).
    pub prefix_len: usize,
    /// Hidden size of the mapper MLP.
    pub mapper_hidden: usize,
    /// Learned input vectors per genre after the prefix (with `decoder.genre_input`).
    pub genre_tokens: usize,
    /// LoRA rank on every block's query and value projections (0: none), and its scale numerator.
    pub lora_rank: usize,
    pub lora_alpha: f64,
    /// A passage is cut to this many of the language model's tokens.
    pub max_tokens: usize,
    /// Training passages, taken evenly across the training books (each read, tokenized and encoded once).
    pub max_passages: usize,
    /// Held-out passages scored at each validation.
    pub valid_passages: usize,
    /// The share of training passages whose vector is replaced by the mean passage's (zero once
    /// centred), so that the genre tokens and keywords must carry the passage's style and subject alone
    /// for those: without it the vector carries the genre and the genre tokens learn nothing (measured:
    /// a genre gain of 0.0003 nats), and guidance (`generate.guidance`) has nothing to contrast.
    pub vector_dropout: f32,
    /// The genre's name as prompt text too (`Genre: sci-fi.` before the keywords), which the pretrained
    /// model already reads, beside the learned genre tokens; dropped with them (`decoder.genre_dropout`).
    pub genre_text: bool,
    /// Batch, optimizer, seed and step counts (`[decoder.lm.train]`).
    pub train: TrainSchedule,
}

impl Default for LmDecoderConfig {
    fn default() -> Self {
        LmDecoderConfig {
            prefix_len: 8,
            mapper_hidden: 512,
            genre_tokens: 2,
            lora_rank: 8,
            lora_alpha: 16.0,
            max_tokens: 80,
            max_passages: 8000,
            valid_passages: 64,
            vector_dropout: 0.0,
            genre_text: false,
            train: TrainSchedule {
                batch_size: 8,
                learning_rate: 1e-3,
                clip_norm: 1.0,
                seed: 42,
                steps: 400,
                validate_every: 100,
                checkpoint_every: 50,
            },
        }
    }
}

impl LmDecoderConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least_one(&[
            ("decoder.lm.prefix_len", self.prefix_len as u64),
            ("decoder.lm.mapper_hidden", self.mapper_hidden as u64),
            ("decoder.lm.genre_tokens", self.genre_tokens as u64),
            ("decoder.lm.max_tokens", self.max_tokens as u64),
            ("decoder.lm.max_passages", self.max_passages as u64),
            ("decoder.lm.valid_passages", self.valid_passages as u64),
        ])?;
        not_negative(&[("decoder.lm.lora_alpha", self.lora_alpha as f32)])?;
        share(&[("decoder.lm.vector_dropout", f64::from(self.vector_dropout))])?;
        self.train.validate("decoder.lm", 1)
    }

    pub fn unchanged(&self, other: &LmDecoderConfig) -> Vec<(String, bool)> {
        let mut checks = vec![
            ("decoder.lm.prefix_len".to_string(), self.prefix_len == other.prefix_len),
            ("decoder.lm.mapper_hidden".into(), self.mapper_hidden == other.mapper_hidden),
            ("decoder.lm.genre_tokens".into(), self.genre_tokens == other.genre_tokens),
            ("decoder.lm.lora_rank".into(), self.lora_rank == other.lora_rank),
            ("decoder.lm.lora_alpha".into(), self.lora_alpha == other.lora_alpha),
            ("decoder.lm.max_tokens".into(), self.max_tokens == other.max_tokens),
            ("decoder.lm.max_passages".into(), self.max_passages == other.max_passages),
            ("decoder.lm.vector_dropout".into(), self.vector_dropout == other.vector_dropout),
            ("decoder.lm.genre_text".into(), self.genre_text == other.genre_text),
        ];
        checks.extend(self.train.unchanged(&other.train, "decoder.lm"));
        checks
    }
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            kind: DecoderKind::Gru,
            lm: LmDecoderConfig::default(),
            passage_sentences: 3,
            max_tokens: 70,
            word_dim: 128,
            hidden_dim: 384,
            per_step_context: true,
            word_dropout: 0.5,
            bag_of_words: 3.0,
            centre_context: true,
            keywords: 6,
            genre_input: true,
            genre_dropout: 0.2,
            max_passages: 40_000,
            train: TrainSchedule {
                batch_size: 32,
                learning_rate: 2e-3,
                clip_norm: 5.0,
                seed: 42,
                steps: 1500,
                validate_every: 250,
                checkpoint_every: 250,
            },
            sampled_softmax: 1024,
            valid_batches: 10,
        }
    }
}

/// Settings of `storytool compute-bias`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BiasConfig {
    /// A genre's bias is the mean vector of its books' paragraphs of at least this many tokens.
    pub min_passage_tokens: usize,
    /// At most this many passages per genre (and captions), taken evenly.
    pub max_passages: usize,
}

impl Default for BiasConfig {
    fn default() -> Self {
        BiasConfig { min_passage_tokens: 100, max_passages: 4000 }
    }
}

/// Settings of `storytool generate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateConfig {
    /// Nearest captions whose mean vector is shifted (neural-storyteller: 100).
    pub k: usize,
    /// Beam width; when no hypothesis finishes, the search is retried once with `fallback_beam`.
    pub beam: usize,
    pub fallback_beam: usize,
    /// The story ends within this many words.
    pub max_words: usize,
    /// No story shorter than this (its end is forbidden until then).
    pub min_words: usize,
    /// No n-gram of this length may repeat within a story (0 = allowed).
    pub no_repeat_ngram: usize,
    /// Scores are divided by length^alpha to compare hypotheses of different lengths.
    pub length_penalty: f32,
    /// How far the story's vector moves with the photo: the captions' offset from the caption bias is
    /// multiplied by this (1 = neural-storyteller's shift).
    pub content_strength: f32,
    /// How far it moves toward the genre: the genre bias's offset from the decoder's mean passage vector
    /// (from zero for decoders trained without `decoder.centre_context`) is multiplied by this.
    pub genre_strength: f32,
    /// Steering by the decoder's own bag-of-words head (decoders trained with `decoder.bag_of_words`): each
    /// word's score gains this times how much more likely the story's vector makes it than the mean
    /// passage's vector does (`log p_bow(w | v) - log p_bow(w | mean)`). 0 turns it off.
    pub bag_of_words: f32,
    /// Keywords for decoders trained with `decoder.keywords`: the decoder is given this many of the
    /// captions' commonest content words (counted once per caption over the `k` captions). 0: none.
    pub keywords: usize,
    /// Weighted decoding toward the keywords (GRU decoders; see `lm_keyword_bonus`): each keyword's
    /// log-probability gains this many nats until the story has used it. 0 turns it off.
    pub keyword_bonus: f32,
    /// Each content word's log-probability loses this many nats for every time the story has already used
    /// it (Keskar et al. 2019 divide logits instead). 0 turns it off.
    pub repetition_penalty: f32,
    /// Gumbel noise on the beam's ranking (stochastic beam search): 0 is plain beam search, which writes the
    /// same phrases for every photo; 0.5-1 varies stories (by `--seed`). With `strategy = "sample"`, the
    /// sampling temperature.
    pub temperature: f32,
    /// `beam`: (stochastic) beam search; `sample`: nucleus sampling, token by token, from the `top_p` most
    /// likely mass at `temperature` (what suits a pretrained language model; a GRU decoder always searches).
    pub strategy: Strategy,
    pub top_p: f32,
    /// Classifier-free guidance for language-model decoders (Ho & Salimans 2022; for text, Sanchez et al.
    /// 2023): each token's log-probability becomes `lp(v, genre) + w (lp(v, genre) - lp(mean, none))`,
    /// the second written with the mean passage's vector and no genre, in the same batch. It pushes what
    /// the photo's vector and the genre change in the next word, which a trained prefix alone barely
    /// does; tokens under 1% of the most likely one's probability stay out. 0 turns it off (and the
    /// second row with it); trained steering only.
    pub guidance: f32,
    /// Weighted decoding toward the genre's words, for language-model decoders whose folder has a
    /// `genre_words.json` (counted on their training books): each of the genre's words not yet in the
    /// story gains this times its log-ratio (how many times more often the genre's books use it than the
    /// others', logged), until the story has used it. 0 turns it off.
    pub genre_words: f32,
    /// ... and none is pulled once the story has this many of them.
    pub genre_word_limit: usize,
    /// Neither the genre's words nor the keywords are pulled until this many tokens follow the last of them
    /// the story wrote (1: none right after one), so they do not come in chains or lists.
    pub pull_spacing: usize,
    /// Weighted decoding toward the keywords for language-model decoders, which read them in their prompt
    /// too (`keyword_bonus` is the GRU's): each keyword's log-probability gains this many nats until the
    /// story has used it. 0 turns it off.
    pub lm_keyword_bonus: f32,
}

/// How a language-model decoder picks its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Beam,
    #[default]
    Sample,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            k: 100,
            beam: 5,
            fallback_beam: 50,
            max_words: 60,
            min_words: 15,
            no_repeat_ngram: 3,
            length_penalty: 1.0,
            content_strength: 1.0,
            genre_strength: 1.5,
            bag_of_words: 1.0,
            keywords: 4,
            keyword_bonus: 5.0,
            repetition_penalty: 1.0,
            temperature: 0.7,
            strategy: Strategy::Sample,
            top_p: 0.9,
            guidance: 0.0,
            genre_words: 4.0,
            genre_word_limit: 5,
            pull_spacing: 1,
            lm_keyword_bonus: 1.5,
        }
    }
}

/// An annotation file and the folder of its photos.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSet {
    pub captions: PathBuf,
    pub images: PathBuf,
}

/// What `storytool pipeline` reads and where it writes. Relative paths are relative to the current folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Every stage's output goes in a folder of this one (corpus/, encoder/, decoder/, bias/, features-*/,
    /// vse/, caption-bank/, stories.json).
    pub run_dir: PathBuf,
    /// Novels: a folder of `.txt` files, with `catalog` (CSV), or one folder per genre with `catalog = ""`.
    pub books: PathBuf,
    pub catalog: Option<PathBuf>,
    /// COCO captions JSON files with their photo folders.
    pub coco: Vec<ImageSet>,
    /// Flickr8k `captions.txt` files with their photo folders.
    pub flickr8k: Vec<ImageSet>,
    /// Word vectors for the VSE's word embeddings (optional), and the word list of an `.npy` table.
    pub word_vectors: Option<PathBuf>,
    pub word_vectors_words: Option<PathBuf>,
    /// EfficientNet-Lite weights (default: `$STORYTOOL_CNN_WEIGHTS`, then the file `scripts/fetch-cnn.sh` fetches).
    pub cnn: Option<PathBuf>,
    /// Photos to write stories about at the end, in each of `story_genres`.
    pub photos: Vec<PathBuf>,
    pub story_genres: Vec<String>,
    /// Train a Show-Attend-Tell captioner too (features keep each photo's spatial map, about 125 KB a
    /// photo) and write the stories from its captions instead of the caption bank's.
    pub captioner: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        let data = PathBuf::from("../shared/data");
        PipelineConfig {
            run_dir: PathBuf::from("runs/pipeline"),
            books: data.join("books"),
            catalog: Some(data.join("books.csv")),
            coco: vec![
                ImageSet {
                    captions: data.join("coco/annotations/captions_val2017.json"),
                    images: data.join("coco/val2017"),
                },
                ImageSet {
                    captions: data.join("coco/annotations/captions_train2017.json"),
                    images: data.join("coco/train2017"),
                },
            ],
            flickr8k: vec![ImageSet {
                captions: data.join("flickr8k/captions.txt"),
                images: data.join("flickr8k/images"),
            }],
            word_vectors: None,
            word_vectors_words: None,
            cnn: None,
            photos: vec![PathBuf::from("data/samples/chelsea.png"), PathBuf::from("data/samples/coffee.png")],
            story_genres: vec!["adventure".into(), "sci-fi".into(), "thriller".into()],
            captioner: false,
        }
    }
}

impl Default for VseConfig {
    fn default() -> Self {
        VseConfig {
            word_dim: 50,
            embed_dim: 256,
            max_tokens: 32,
            vocab_size: 20_000,
            train: TrainSchedule {
                batch_size: 128,
                learning_rate: 2e-3,
                clip_norm: 2.0,
                seed: 42,
                steps: 300,
                validate_every: 50,
                checkpoint_every: 250,
            },
            margin: 0.2,
            max_violation: false,
            valid_percent: 10,
            test_percent: 15,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let genres = [
            ("adventure", &["adventure"][..]),
            ("sci-fi", &["sci-fi", "fantasy"][..]),
            ("thriller", &["thriller", "mystery"][..]),
            ("horror", &["horror", "gothic"][..]),
            ("romance", &["romance"][..]),
            ("historical", &["historical"][..]),
        ];
        Config {
            corpus: CorpusConfig::default(),
            encoder: EncoderConfig::default(),
            vse: VseConfig::default(),
            captioner: CaptionerConfig::default(),
            decoder: DecoderConfig::default(),
            bias: BiasConfig::default(),
            generate: GenerateConfig::default(),
            pipeline: PipelineConfig::default(),
            device: DeviceConfig::default(),
            genres: genres
                .iter()
                .map(|(name, tags)| (name.to_string(), tags.iter().map(|tag| tag.to_string()).collect()))
                .collect(),
        }
    }
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig { vocab_size: 10_000, lowercase: true, valid_books: 4 }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid override `{assignment}`: {message}")]
    Override { assignment: String, message: String },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// One `key=value` assignment from the command line, e.g. `corpus.vocab_size=20000`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Dotted path of the key: `corpus.vocab_size`.
    pub key: String,
    /// The value, parsed as TOML (`20000`, `true`, `["a", "b"]`); bare words are taken as strings.
    pub value: toml::Value,
    /// The assignment as the user wrote it, for error messages.
    pub assignment: String,
}

impl Override {
    /// Parses `key=value`.
    pub fn parse(assignment: &str) -> Result<Override, ConfigError> {
        let error =
            |message: &str| ConfigError::Override { assignment: assignment.to_string(), message: message.to_string() };
        let (key, raw_value) = assignment.split_once('=').ok_or_else(|| error("expected `key=value`"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|part| part.is_empty()) {
            return Err(error("the key must be a dotted path such as `corpus.vocab_size`"));
        }
        let raw_value = raw_value.trim();
        let value = toml::from_str::<toml::Table>(&format!("value = {raw_value}"))
            .ok()
            .and_then(|mut table| table.remove("value"))
            .unwrap_or_else(|| toml::Value::String(raw_value.to_string()));
        Ok(Override { key: key.to_string(), value, assignment: assignment.to_string() })
    }

    fn apply(&self, root: &mut toml::Table) -> Result<(), ConfigError> {
        let key = schedule::lifted_key(&self.key);
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().expect("a key has at least one part");
        let mut table = root;
        for part in parts {
            let entry = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().ok_or_else(|| ConfigError::Override {
                assignment: self.assignment.clone(),
                message: format!("`{part}` is a value, not a section"),
            })?;
        }
        table.insert(last.to_string(), self.value.clone());
        Ok(())
    }
}

/// The widest beam a search may use (neural-storyteller's fallback is 50).
pub const MAX_BEAM: usize = 200;
/// The longest story or caption, in words.
pub const MAX_WORDS: usize = 1000;
/// The most nearest captions a story may be made from.
pub const MAX_NEAREST: usize = 10_000;
/// The most keywords a decoder is trained with or given.
pub const MAX_KEYWORDS: usize = 64;

impl Config {
    /// Reads `path` (or nothing: the defaults) and applies `overrides` in order. Keys a file leaves out take
    /// the defaults of their own section (a `[decoder.train]` that sets only `steps` keeps the decoder's
    /// batch size); schedule keys written flat in a trainer's section (`encoder.steps`, the layout before
    /// `[encoder.train]`) are read as the table's.
    pub fn load(path: Option<&Path>, overrides: &[Override]) -> Result<Config, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
                let parse_error = |error: toml::de::Error| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: error.to_string(),
                };
                let mut table = toml::from_str::<toml::Table>(&text).map_err(parse_error)?;
                let before = table.clone();
                schedule::lift_schedule_keys(&mut table, true)?;
                if table == before {
                    // Deserialize the text itself first: its errors carry line and column numbers.
                    toml::from_str::<Config>(&text).map_err(parse_error)?;
                }
                table
            }
            None => toml::Table::new(),
        };
        for assignment in overrides {
            assignment.apply(&mut table)?;
            Self::over_defaults(&table).map_err(|error| ConfigError::Override {
                assignment: assignment.assignment.clone(),
                message: error.to_string().trim().to_string(),
            })?;
        }
        let config = Self::over_defaults(&table).map_err(|error| match error {
            ConfigError::Parse { message, .. } => {
                ConfigError::Parse { path: path.map(Path::to_path_buf).unwrap_or_default(), message }
            }
            other => other,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// `table` laid over the defaults, table by table, and read.
    fn over_defaults(table: &toml::Table) -> Result<Config, ConfigError> {
        let mut merged = toml::Table::try_from(Config::default()).expect("the defaults serialize");
        merge_tables(&mut merged, table);
        // `[genres]` is a list of genres, not settings: a file that has one replaces the defaults'.
        if let Some(genres) = table.get("genres") {
            merged.insert("genres".into(), genres.clone());
        }
        Config::deserialize(toml::Value::Table(merged))
            .map_err(|error| ConfigError::Parse { path: PathBuf::new(), message: error.to_string() })
    }

    /// Checks every section, each by its own rules, and naming the first key that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.corpus.validate()?;
        self.encoder.validate()?;
        self.decoder.validate()?;
        self.vse.validate()?;
        self.captioner.validate()?;
        self.generate.validate()?;
        self.bias.validate()?;
        validate_genres(&self.genres)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serializes")
    }
}

/// Lays `top` over `base`: tables merge key by key, anything else replaces.
fn merge_tables(base: &mut toml::Table, top: &toml::Table) {
    for (key, value) in top {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(top)) => merge_tables(base, top),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// The first of `values` (key, value) that is 0.
fn at_least_one(values: &[(&str, u64)]) -> Result<(), ConfigError> {
    match values.iter().find(|(_, value)| *value == 0) {
        Some((key, _)) => Err(invalid(key, "must be at least 1")),
        None => Ok(()),
    }
}

/// The first of `values` (key, value, most) that is above its most. Search sizes bound the work of one
/// story or caption: each beam step scores beam x vocabulary words, so `--beam 100000` would run for many
/// minutes on one request.
fn at_most(values: &[(&str, usize, usize)]) -> Result<(), ConfigError> {
    match values.iter().find(|(_, value, most)| value > most) {
        Some((key, value, most)) => Err(invalid(key, format!("{value} is more than the {most} allowed"))),
        None => Ok(()),
    }
}

/// The first of `values` that is negative or not finite.
fn not_negative(values: &[(&str, f32)]) -> Result<(), ConfigError> {
    match values.iter().find(|(_, value)| !(*value >= 0.0 && value.is_finite())) {
        Some((key, value)) => Err(invalid(key, format!("{value} is not 0 or more"))),
        None => Ok(()),
    }
}

/// The first of `values` that is not a positive, finite number.
fn positive(values: &[(&str, f64)]) -> Result<(), ConfigError> {
    match values.iter().find(|(_, value)| !(*value > 0.0 && value.is_finite())) {
        Some((key, value)) => Err(invalid(key, format!("{value} is not a positive number"))),
        None => Ok(()),
    }
}

/// The first of `values` that is not a share in [0, 1).
fn share(values: &[(&str, f64)]) -> Result<(), ConfigError> {
    match values.iter().find(|(_, value)| !(0.0..1.0).contains(value)) {
        Some((key, value)) => Err(invalid(key, format!("{value} is not a share from 0 up to (not including) 1"))),
        None => Ok(()),
    }
}

/// Held-out percentages must leave images to train on.
fn split_percents(section: &str, valid: u32, test: u32) -> Result<(), ConfigError> {
    if valid + test >= 100 {
        return Err(invalid(
            &format!("{section}.test_percent"),
            "validation and test together must leave images to train on",
        ));
    }
    Ok(())
}

impl CorpusConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vocab_size < 3 {
            return Err(invalid(
                "corpus.vocab_size",
                format!(
                    "{} is too small: ids 0 and 1 are reserved for `<eos>` and `<unk>`, so at least 3 are needed",
                    self.vocab_size
                ),
            ));
        }
        if self.vocab_size > u32::MAX as usize {
            return Err(invalid("corpus.vocab_size", "token ids are stored as u32"));
        }
        Ok(())
    }
}

impl EncoderConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least_one(&[
            ("encoder.word_dim", self.word_dim as u64),
            ("encoder.hidden_dim", self.hidden_dim as u64),
            ("encoder.max_tokens", self.max_tokens as u64),
        ])?;
        self.train.validate("encoder", 1)?;
        if self.bidirectional && self.hidden_dim % 2 != 0 {
            return Err(invalid(
                "encoder.hidden_dim",
                format!("{} is odd; bi-skip (`encoder.bidirectional`) splits it in two", self.hidden_dim),
            ));
        }
        if !self.adaptive_softmax.is_empty() && self.sampled_softmax > 0 {
            return Err(invalid(
                "encoder.adaptive_softmax",
                "an adaptive softmax replaces the sampled one: set `encoder.sampled_softmax = 0` with it",
            ));
        }
        Ok(())
    }

    /// The settings a resumed run must share with its checkpoint: they shape the weights or the batches.
    pub fn unchanged(&self, other: &EncoderConfig) -> Vec<(String, bool)> {
        let mut checks = vec![
            ("encoder.word_dim".to_string(), self.word_dim == other.word_dim),
            ("encoder.hidden_dim".into(), self.hidden_dim == other.hidden_dim),
            ("encoder.max_tokens".into(), self.max_tokens == other.max_tokens),
            ("encoder.sampled_softmax".into(), self.sampled_softmax == other.sampled_softmax),
            ("encoder.adaptive_softmax".into(), self.adaptive_softmax == other.adaptive_softmax),
            ("encoder.per_step_context".into(), self.per_step_context == other.per_step_context),
            ("encoder.bidirectional".into(), self.bidirectional == other.bidirectional),
        ];
        checks.extend(self.train.unchanged(&other.train, "encoder"));
        checks
    }
}

impl DecoderConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least_one(&[
            ("decoder.passage_sentences", self.passage_sentences as u64),
            ("decoder.max_tokens", self.max_tokens as u64),
            ("decoder.word_dim", self.word_dim as u64),
            ("decoder.hidden_dim", self.hidden_dim as u64),
            ("decoder.max_passages", self.max_passages as u64),
        ])?;
        self.train.validate("decoder", 1)?;
        self.lm.validate()?;
        at_most(&[("decoder.keywords", self.keywords, MAX_KEYWORDS)])?;
        share(&[
            ("decoder.word_dropout", f64::from(self.word_dropout)),
            ("decoder.genre_dropout", f64::from(self.genre_dropout)),
        ])?;
        not_negative(&[("decoder.bag_of_words", self.bag_of_words)])
    }

    /// The settings a resumed run must share with its checkpoint.
    pub fn unchanged(&self, other: &DecoderConfig) -> Vec<(String, bool)> {
        let mut checks = vec![
            ("decoder.passage_sentences".to_string(), self.passage_sentences == other.passage_sentences),
            ("decoder.max_tokens".into(), self.max_tokens == other.max_tokens),
            ("decoder.word_dim".into(), self.word_dim == other.word_dim),
            ("decoder.hidden_dim".into(), self.hidden_dim == other.hidden_dim),
            ("decoder.per_step_context".into(), self.per_step_context == other.per_step_context),
            ("decoder.word_dropout".into(), self.word_dropout == other.word_dropout),
            ("decoder.bag_of_words".into(), self.bag_of_words == other.bag_of_words),
            ("decoder.centre_context".into(), self.centre_context == other.centre_context),
            ("decoder.keywords".into(), self.keywords == other.keywords),
            ("decoder.genre_input".into(), self.genre_input == other.genre_input),
            ("decoder.genre_dropout".into(), self.genre_dropout == other.genre_dropout),
            ("decoder.max_passages".into(), self.max_passages == other.max_passages),
            ("decoder.sampled_softmax".into(), self.sampled_softmax == other.sampled_softmax),
        ];
        checks.push(("decoder.kind".into(), self.kind == other.kind));
        checks.extend(self.train.unchanged(&other.train, "decoder"));
        if self.kind == DecoderKind::Lm {
            checks.extend(self.lm.unchanged(&other.lm));
        }
        checks
    }
}

impl VseConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least_one(&[
            ("vse.word_dim", self.word_dim as u64),
            ("vse.embed_dim", self.embed_dim as u64),
            ("vse.max_tokens", self.max_tokens as u64),
        ])?;
        // The other pairs of a batch are each pair's negatives.
        self.train.validate("vse", 2)?;
        positive(&[("vse.margin", f64::from(self.margin))])?;
        split_percents("vse", self.valid_percent, self.test_percent)?;
        if self.vocab_size < 3 {
            return Err(invalid("vse.vocab_size", "must be at least 3"));
        }
        Ok(())
    }

    /// The settings a resumed run must share with its checkpoint.
    pub fn unchanged(&self, other: &VseConfig) -> Vec<(String, bool)> {
        let mut checks = vec![
            ("vse.word_dim".to_string(), self.word_dim == other.word_dim),
            ("vse.embed_dim".into(), self.embed_dim == other.embed_dim),
            ("vse.max_tokens".into(), self.max_tokens == other.max_tokens),
            ("vse.valid_percent".into(), self.valid_percent == other.valid_percent),
            ("vse.test_percent".into(), self.test_percent == other.test_percent),
        ];
        checks.extend(self.train.unchanged(&other.train, "vse"));
        checks
    }
}

impl CaptionerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least_one(&[
            ("captioner.word_dim", self.word_dim as u64),
            ("captioner.hidden_dim", self.hidden_dim as u64),
            ("captioner.attention_dim", self.attention_dim as u64),
            ("captioner.max_tokens", self.max_tokens as u64),
            ("captioner.beam", self.beam as u64),
            ("captioner.max_words", self.max_words as u64),
        ])?;
        self.train.validate("captioner", 1)?;
        at_most(&[("captioner.beam", self.beam, MAX_BEAM), ("captioner.max_words", self.max_words, MAX_WORDS)])?;
        split_percents("captioner", self.valid_percent, self.test_percent)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(invalid("captioner.dropout", format!("{} is not in [0, 1)", self.dropout)));
        }
        if !(self.attention_penalty >= 0.0 && self.attention_penalty.is_finite()) {
            return Err(invalid("captioner.attention_penalty", "must be 0 or more"));
        }
        if self.vocab_size < 3 {
            return Err(invalid("captioner.vocab_size", "must be at least 3"));
        }
        Ok(())
    }
}

impl CaptionerConfig {
    /// The settings a resumed run must share with its checkpoint.
    pub fn unchanged(&self, other: &CaptionerConfig) -> Vec<(String, bool)> {
        let mut checks = vec![
            ("captioner.word_dim".to_string(), self.word_dim == other.word_dim),
            ("captioner.hidden_dim".into(), self.hidden_dim == other.hidden_dim),
            ("captioner.attention_dim".into(), self.attention_dim == other.attention_dim),
            ("captioner.max_tokens".into(), self.max_tokens == other.max_tokens),
            ("captioner.valid_percent".into(), self.valid_percent == other.valid_percent),
            ("captioner.test_percent".into(), self.test_percent == other.test_percent),
        ];
        checks.extend(self.train.unchanged(&other.train, "captioner"));
        checks
    }
}

impl BiasConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least_one(&[("bias.max_passages", self.max_passages as u64)])
    }
}

impl GenerateConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least_one(&[
            ("generate.k", self.k as u64),
            ("generate.beam", self.beam as u64),
            ("generate.fallback_beam", self.fallback_beam as u64),
            ("generate.max_words", self.max_words as u64),
        ])?;
        at_most(&[
            ("generate.beam", self.beam, MAX_BEAM),
            ("generate.fallback_beam", self.fallback_beam, MAX_BEAM),
            ("generate.max_words", self.max_words, MAX_WORDS),
            ("generate.k", self.k, MAX_NEAREST),
            ("generate.keywords", self.keywords, MAX_KEYWORDS),
        ])?;
        not_negative(&[
            ("generate.content_strength", self.content_strength),
            ("generate.genre_strength", self.genre_strength),
            ("generate.bag_of_words", self.bag_of_words),
            ("generate.keyword_bonus", self.keyword_bonus),
            ("generate.repetition_penalty", self.repetition_penalty),
            ("generate.temperature", self.temperature),
            ("generate.length_penalty", self.length_penalty),
            ("generate.guidance", self.guidance),
            ("generate.genre_words", self.genre_words),
            ("generate.lm_keyword_bonus", self.lm_keyword_bonus),
        ])?;
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(invalid("generate.top_p", format!("{} is not in (0, 1]", self.top_p)));
        }
        if self.min_words > self.max_words {
            return Err(invalid(
                "generate.min_words",
                format!("{} is more than generate.max_words ({})", self.min_words, self.max_words),
            ));
        }
        Ok(())
    }
}

fn validate_genres(genres: &BTreeMap<String, Vec<String>>) -> Result<(), ConfigError> {
    for (genre, tags) in genres {
        if genre.trim().is_empty() {
            return Err(invalid("genres", "a genre name is empty"));
        }
        if tags.is_empty() || tags.iter().any(|tag| tag.trim().is_empty()) {
            return Err(invalid(&format!("genres.{genre}"), "list at least one catalogue tag, and no empty ones"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn unknown_key_names_the_key_and_line() {
        let file = write_config("[corpus]\nvocab_size = 100\nvocab_sise = 3\n");
        let error = Config::load(Some(file.path()), &[]).unwrap_err().to_string();
        assert!(error.contains("vocab_sise"), "{error}");
        assert!(error.contains("line 3"), "{error}");
    }

    #[test]
    fn overrides_apply_in_order_and_unknown_override_keys_fail() {
        let overrides =
            [Override::parse("corpus.vocab_size=50").unwrap(), Override::parse("corpus.vocab_size = 60").unwrap()];
        let config = Config::load(None, &overrides).unwrap();
        assert_eq!(config.corpus.vocab_size, 60);

        let error = Config::load(None, &[Override::parse("corpus.vocab=5").unwrap()]).unwrap_err().to_string();
        assert!(error.contains("corpus.vocab=5") && error.contains("vocab"), "{error}");
    }

    #[test]
    fn override_values_parse_as_toml_or_strings() {
        let genre = Override::parse("genres.noir=[\"mystery\", \"thriller\"]").unwrap();
        let config = Config::load(None, &[genre]).unwrap();
        assert_eq!(config.genres["noir"], vec!["mystery", "thriller"]);
        assert!(Override::parse("novalue").is_err());
        assert!(Override::parse("a..b=1").is_err());
    }

    #[test]
    fn too_small_vocabulary_is_rejected_with_its_key() {
        let error = Config::load(None, &[Override::parse("corpus.vocab_size=2").unwrap()]).unwrap_err();
        assert!(error.to_string().contains("corpus.vocab_size"), "{error}");
    }

    #[test]
    fn an_adaptive_softmax_loads_only_without_a_sampled_one() {
        let adaptive = Override::parse("encoder.adaptive_softmax=[1000, 4000]").unwrap();
        let error = Config::load(None, std::slice::from_ref(&adaptive)).unwrap_err().to_string();
        assert!(error.contains("encoder.adaptive_softmax") && error.contains("sampled_softmax = 0"), "{error}");
        let dense = Override::parse("encoder.sampled_softmax=0").unwrap();
        let config = Config::load(None, &[adaptive, dense]).unwrap();
        assert_eq!(config.encoder.adaptive_softmax, vec![1000, 4000]);
    }

    #[test]
    fn shipped_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        for name in ["demo.toml", "paper.toml"] {
            Config::load(Some(&root.join(name)), &[]).unwrap_or_else(|error| panic!("{name}: {error}"));
        }
        let demo = Config::load(Some(&root.join("demo.toml")), &[]).unwrap();
        assert_eq!(demo, Config::default(), "configs/demo.toml and Config::default() must agree");
    }

    #[test]
    fn a_partial_train_table_keeps_its_own_sections_defaults() {
        let file = write_config("[decoder.train]\nsteps = 12\n");
        let config = Config::load(Some(file.path()), &[]).unwrap();
        assert_eq!(config.decoder.train.steps, 12);
        assert_eq!(config.decoder.train.batch_size, DecoderConfig::default().train.batch_size);
        assert_eq!(config.decoder.train.learning_rate, DecoderConfig::default().train.learning_rate);
        let config = Config::load(None, &[Override::parse("vse.train.steps=7").unwrap()]).unwrap();
        assert_eq!((config.vse.train.steps, config.vse.train.batch_size), (7, VseConfig::default().train.batch_size));
    }

    #[test]
    fn flat_schedule_keys_of_older_files_and_overrides_still_load() {
        let file = write_config("[encoder]\nsteps = 9\nword_dim = 16\n\n[vse]\nbatch_size = 4\n");
        let overrides =
            [Override::parse("decoder.learning_rate=0.5").unwrap(), Override::parse("encoder.steps=11").unwrap()];
        let config = Config::load(Some(file.path()), &overrides).unwrap();
        assert_eq!((config.encoder.train.steps, config.encoder.word_dim), (11, 16), "a later override wins");
        assert_eq!(config.vse.train.batch_size, 4);
        assert_eq!(config.decoder.train.learning_rate, 0.5);
        assert_eq!(config.encoder.train.batch_size, EncoderConfig::default().train.batch_size);

        let both = write_config("[encoder]\nsteps = 9\n\n[encoder.train]\nsteps = 10\n");
        let error = Config::load(Some(both.path()), &[]).unwrap_err().to_string();
        assert!(error.contains("encoder.steps") && error.contains("encoder.train.steps"), "{error}");

        // A manifest's config written before the table existed.
        let mut flat = toml::Table::try_from(EncoderConfig::default()).unwrap();
        let train = flat.remove("train").unwrap();
        flat.extend(train.as_table().unwrap().clone());
        let json = serde_json::to_string(&flat).unwrap();
        #[derive(Deserialize)]
        struct Manifest {
            #[serde(deserialize_with = "section_with_lifted_schedule")]
            config: EncoderConfig,
        }
        let manifest: Manifest = serde_json::from_str(&format!("{{\"config\": {json}}}")).unwrap();
        assert_eq!(manifest.config, EncoderConfig::default());
    }

    #[test]
    fn each_section_names_its_own_bad_key() {
        for (assignment, key) in [
            ("encoder.train.learning_rate=0", "encoder.train.learning_rate"),
            ("vse.train.batch_size=1", "vse.train.batch_size"),
            ("captioner.train.validate_every=0", "captioner.train.validate_every"),
            ("decoder.word_dropout=1.5", "decoder.word_dropout"),
            ("generate.beam=100000", "generate.beam"),
        ] {
            let error = Config::load(None, &[Override::parse(assignment).unwrap()]).unwrap_err().to_string();
            assert!(error.contains(key), "{assignment}: {error}");
        }
    }
}
