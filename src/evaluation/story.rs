//! `storytool evaluate story`: a story for every test photo in every genre, judged as a reader would.
//!
//! - **Relevance**: a story's TF-IDF vector (content words; IDF over the test photos' reference captions) is
//!   compared with each test photo's reference captions (all five, as one document); the figure is the share
//!   of stories whose own photo ranks in the top 10% (chance: 10%), beside the same with the stories'
//!   photos shuffled. The caption bank never offers a test photo's own captions.
//! - **Genre**: a naive Bayes classifier trained on the decoder's held-out books (its own leave-one-book-out
//!   accuracy is reported) names each story's genre; *paired* accuracy asks whether the genre-g story is
//!   the most g-like of its photo's stories, which only the shift between genres can explain.
//! - **Diversity**: distinct-1/2 over all stories, the share of the most common opening sentence.
//! - **Overlap**: content-word Jaccard between a photo's stories in different genres, beside that between
//!   different photos' stories in one genre (a story that follows its photo shares more with its siblings).
//! - **Fluency**: the cross-entropy of the stories under word 4-gram judges (`fluency`) counted from the
//!   held-out books, beside real passages of a held-out book its judge did not count, and beside both
//!   shuffled (the word-order gain). Each judge leaves one held-out book out; a story's score is the mean
//!   of every judge's.
//! - **Baseline** (with `baseline`): the same figures for the prompt-only baseline, the bare language model
//!   asked for a story in the genre about the same keywords (`story::lm_writer`), on the same captions.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::EvaluationError;
use super::books::{HeldOutText, decoder_held_out};
use super::fluency::{Fluency, FluencyJudge, fluency};
use super::genre::{GenreClassifier, Labelled, argmax, leave_one_book_out};
use super::text::{TfIdf, all_words, content_words, cosine, distinct_n, jaccard, rank_of, top_opening_share};
use crate::captions::{CaptionDataset, DatasetKind, Split, split_of};
use crate::config::GenerateConfig;
use crate::language_model::decoding::load_decoding;
use crate::progress::Progress;
use crate::story::generate::{Generator, ModelPaths, StoryInput, StoryOptions};
use crate::story::lm_writer::LmWriter;
use crate::story::writer::StoryWriter;
use crate::util::cancel::CancelFlag;
use crate::vision::load_image;

/// Test photos sampled (evenly) when a language model writes and no `max_photos` is given.
pub const LANGUAGE_MODEL_PHOTOS: usize = 30;
/// Content words per classifier training passage: about as many as a 60-word story has.
const PASSAGE_CONTENT_WORDS: usize = 24;
/// Training passages per book, taken evenly, so that long books do not outvote short ones.
const PASSAGES_PER_BOOK: usize = 300;

#[derive(Debug, Clone)]
pub struct StoryEvalRequest {
    pub models: ModelPaths,
    /// Annotation files and their photo folders.
    pub photo_sets: Vec<(DatasetKind, PathBuf, PathBuf)>,
    pub genres: Vec<String>,
    /// Genre name -> catalogue tags (the config's `[genres]`), for the classifier's books.
    pub genre_tags: HashMap<String, Vec<String>>,
    pub generate: GenerateConfig,
    /// At most this many test photos (taken evenly); `None` for all.
    pub max_photos: Option<usize>,
    /// The folder of the held-out books, if not where the decoder's manifest records it.
    pub books_dir: Option<PathBuf>,
    /// Train the genre classifier on this corpus's validation books instead of the decoder's held-out books
    /// (for decoders whose manifest records none).
    pub corpus: Option<PathBuf>,
    pub seed: u64,
    /// Also write every story with the prompt-only baseline (needs `models.lm`).
    pub baseline: bool,
    /// Where the models run.
    pub device: burn::tensor::Device,
    pub cancel: CancelFlag,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoryEvaluation {
    pub photos: usize,
    pub genres: Vec<String>,
    pub stories: usize,
    /// Where the photos' captions came from: `retrieval` (bank rows of test photos left out) or `captioner`.
    pub captions: String,
    pub relevance_chance: f32,
    pub genre_chance: f32,
    pub classifier_books: usize,
    pub classifier_leave_one_book_out: Option<f32>,
    /// Real passages of held-out books under the judge that did not count their book, as written and
    /// shuffled: the references of every story's fluency.
    pub real_passages: Option<Fluency>,
    pub real_passage_count: usize,
    /// The same density of the genre's words in the held-out books' passages of each genre (the classifier's
    /// passages): what a page of the genre has.
    pub real_genre_words_per_100: Option<f32>,
    /// The decoder's stories.
    #[serde(flatten)]
    pub scores: StoryScores,
    /// The prompt-only baseline's stories of the same photos, captions and genres.
    pub baseline: Option<StoryScores>,
    pub seconds: f32,
    pub samples: Vec<StorySample>,
    pub baseline_samples: Vec<StorySample>,
    /// Every story, and every baseline story (what `--stories` writes; not in the JSON report).
    #[serde(skip)]
    pub every_story: Vec<StorySample>,
    #[serde(skip)]
    pub every_baseline_story: Vec<StorySample>,
}

/// The figures of one set of stories (one per test photo and genre).
#[derive(Debug, Clone, Serialize)]
pub struct StoryScores {
    pub relevance_top10: f32,
    pub relevance_top10_shuffled: f32,
    pub relevance_mean_rank: f32,
    pub stories_sharing_no_caption_word: f32,
    pub genre_accuracy: f32,
    pub genre_paired_accuracy: f32,
    pub distinct_1: f32,
    pub distinct_2: f32,
    pub top_opening_share: f32,
    pub cross_genre_jaccard: f32,
    pub cross_photo_jaccard: f32,
    pub mean_words: f32,
    /// Mean cross-entropy (nats per word) under the fluency judges, as written and shuffled.
    pub fluency: Option<Fluency>,
    /// The stories' cross-entropy over the real passages' (at most 1.2 reads like the books).
    pub fluency_ratio: Option<f64>,
    /// The stories' word-order gain over the real passages'.
    pub word_order_ratio: Option<f64>,
    /// Of every 100 content words of a genre's stories, how many are the genre's words the decoder pulls
    /// toward (`genre_words.json`; mean over genres): beside `real_genre_words_per_100`, how far the pull
    /// stuffs them in. `None` for a decoder without the list.
    pub genre_words_per_100: Option<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StorySample {
    pub photo: String,
    pub genre: String,
    pub story: String,
}

/// A test photo: its key, file and reference captions.
#[derive(Debug, Clone)]
struct TestPhoto {
    key: String,
    path: PathBuf,
    references: Vec<String>,
    caption_ids: Vec<String>,
}

pub fn evaluate_stories(
    request: &StoryEvalRequest,
    progress: &dyn Progress,
) -> Result<StoryEvaluation, EvaluationError> {
    let started = std::time::Instant::now();
    let generator = Generator::load(&request.models, true, &request.device)?;
    let known = generator.genres();
    if let Some(unknown) = request.genres.iter().find(|genre| !known.contains(genre)) {
        return Err(EvaluationError::NothingToEvaluate(format!(
            "the bias folder `{}` has no genre `{unknown}` (it has: {})",
            request.models.bias.display(),
            known.join(", ")
        )));
    }
    if request.genres.len() < 2 {
        return Err(EvaluationError::NothingToEvaluate("evaluate at least two genres".into()));
    }
    let (valid_percent, test_percent, captions_from) =
        match (generator.photos.captioner(), generator.photos.retriever()) {
            (Some(captioner), _) => {
                let config = &captioner.captioner.manifest.config;
                (config.valid_percent, config.test_percent, "captioner")
            }
            (None, Some(retriever)) => {
                let config = &retriever.vse.manifest.config;
                (config.valid_percent, config.test_percent, "retrieval")
            }
            (None, None) => unreachable!("a generator loaded for photos has a retriever or a captioner"),
        };
    let mut photos = test_photos(&request.photo_sets, valid_percent, test_percent)?;
    // A language model writes a story in seconds, not milliseconds: without a limit, it writes for a
    // sample of the photos, so that the evaluation stays within minutes on two cores.
    let writes_slowly = request.baseline || matches!(generator.decoder, StoryWriter::Lm(_));
    let limit = request.max_photos.or(writes_slowly.then_some(LANGUAGE_MODEL_PHOTOS));
    if let Some(limit) = limit {
        photos = crate::story::passages::evenly(&photos, limit);
    }
    if photos.len() < 10 {
        return Err(EvaluationError::NothingToEvaluate(format!(
            "{} test photos are on disk (at least 10 are needed to rank a photo's captions among others')",
            photos.len()
        )));
    }
    let baseline = if request.baseline { Some(baseline_writer(request)?) } else { None };
    let books = held_out_books(request, &generator)?;
    let classifier_data = classifier_passages(request, &books);
    let genre_count = request.genres.len();
    let books_per_genre: Vec<usize> = (0..genre_count)
        .map(|genre| {
            classifier_data
                .iter()
                .filter(|example| example.genre == genre)
                .map(|example| example.book)
                .collect::<HashSet<_>>()
                .len()
        })
        .collect();
    if let Some(empty) = books_per_genre.iter().position(|&books| books == 0) {
        return Err(EvaluationError::NothingToEvaluate(format!(
            "no held-out book of the genre `{}` to train the genre classifier on (the decoder's validation books: train it on a corpus with more `corpus.valid_books`)",
            request.genres[empty]
        )));
    }
    let classifier_books = classifier_data.iter().map(|example| example.book).collect::<HashSet<_>>().len();
    let leave_one_out = leave_one_book_out(&classifier_data, genre_count);
    let classifier = GenreClassifier::train(&classifier_data.iter().collect::<Vec<_>>(), genre_count);
    let judges = FluencyJudges::of(&books, request.seed);
    // The genre's words the decoder pulls toward, by genre index, to count how densely stories use them.
    let genre_words: Option<Vec<HashSet<String>>> = match &generator.decoder {
        StoryWriter::Lm(writer) => writer.genre_words().map(|lists| {
            request
                .genres
                .iter()
                .map(|genre| lists.of_genre(genre).unwrap_or_default().iter().map(|(word, _)| word.clone()).collect())
                .collect()
        }),
        _ => None,
    };
    let real_genre_words_per_100 = genre_words.as_deref().map(|lists| {
        let by_genre: Vec<Vec<&[String]>> = (0..genre_count)
            .map(|genre| {
                classifier_data.iter().filter(|example| example.genre == genre).map(|e| e.words.as_slice()).collect()
            })
            .collect();
        genre_words_per_100(&by_genre, lists)
    });

    // The bank rows of the test photos' own captions are never offered.
    let excluded: HashSet<usize> = match generator.photos.retriever() {
        Some(retriever) => {
            let ids: HashSet<&str> =
                photos.iter().flat_map(|photo| photo.caption_ids.iter().map(String::as_str)).collect();
            retriever
                .bank
                .ids
                .iter()
                .enumerate()
                .filter(|(_, id)| ids.contains(id.as_str()))
                .map(|(row, _)| row)
                .collect()
        }
        None => HashSet::new(),
    };

    let writers = if baseline.is_some() { 2 } else { 1 };
    progress.set_total((photos.len() * genre_count * writers) as u64);
    let mut stories: Vec<Vec<String>> = Vec::with_capacity(photos.len());
    let mut baseline_stories: Vec<Vec<String>> = Vec::new();
    for (photo_index, photo) in photos.iter().enumerate() {
        request.cancel.check().map_err(crate::story::generate::GenerateError::from)?;
        let image = load_image(&photo.path)?;
        let (captions, thoughts) = generator.captions(&StoryInput::Image(image), request.generate.k, &excluded)?;
        let caption_words: Vec<Vec<String>> = captions.iter().map(|caption| caption.words.clone()).collect();
        let mut per_genre = Vec::with_capacity(genre_count);
        let mut baseline_per_genre = Vec::new();
        for (genre_index, genre) in request.genres.iter().enumerate() {
            let mut options = StoryOptions::new(genre, &request.generate);
            // A seed per story (used with `generate.temperature` above 0), so noise differs between stories.
            options.seed = request.seed.wrapping_add((photo_index * genre_count + genre_index) as u64);
            let story = generator.write(captions.clone(), &thoughts, &options, &request.cancel, &mut |_| {})?;
            per_genre.push(story.story);
            progress.advance(1);
            if let Some(baseline) = &baseline {
                let written = baseline
                    .write(None, &caption_words, &options, &request.cancel, &mut |_| {})
                    .map_err(crate::story::generate::GenerateError::from)?;
                baseline_per_genre.push(written.story);
                progress.advance(1);
            }
        }
        stories.push(per_genre);
        baseline_stories.push(baseline_per_genre);
    }
    progress.finish();

    let scoring = Scoring::new(&photos, &classifier, &judges, genre_words.as_deref(), request.seed);
    let scores = scoring.score(&stories, genre_count);
    let baseline_scores = baseline.as_ref().map(|_| scoring.score(&baseline_stories, genre_count));
    // Every story as a sample (none for a baseline that was not written); the report shows the first two
    // photos' of each.
    let as_samples = |stories: &[Vec<String>]| -> Vec<StorySample> {
        photos
            .iter()
            .zip(stories)
            .flat_map(|(photo, per_genre)| {
                per_genre.iter().zip(&request.genres).map(|(story, genre)| StorySample {
                    photo: photo.key.clone(),
                    genre: genre.clone(),
                    story: story.clone(),
                })
            })
            .collect()
    };
    let every_story = as_samples(&stories);
    let every_baseline_story = as_samples(&baseline_stories);
    let shown = |every: &[StorySample]| every.iter().take(2 * genre_count).cloned().collect();
    Ok(StoryEvaluation {
        photos: photos.len(),
        genres: request.genres.clone(),
        stories: photos.len() * genre_count,
        captions: captions_from.into(),
        relevance_chance: scoring.top as f32 / photos.len() as f32,
        genre_chance: 1.0 / genre_count as f32,
        classifier_books,
        classifier_leave_one_book_out: leave_one_out,
        real_passages: judges.real,
        real_passage_count: judges.real_count,
        real_genre_words_per_100,
        scores,
        baseline: baseline_scores,
        seconds: started.elapsed().as_secs_f32(),
        samples: shown(&every_story),
        baseline_samples: shown(&every_baseline_story),
        every_story,
        every_baseline_story,
    })
}

/// The prompt-only baseline: the bare language model the request's models name.
fn baseline_writer(request: &StoryEvalRequest) -> Result<LmWriter, EvaluationError> {
    let Some(path) = request.models.lm.as_deref().filter(|path| path.is_file()) else {
        return Err(EvaluationError::NothingToEvaluate(
            "the prompt-only baseline needs the pretrained language model\n\nhint: run `scripts/fetch-lm.sh`, or pass `--lm FILE` (or `--no-baseline`)".into(),
        ));
    };
    let lm = load_decoding(path, &request.device)
        .map_err(|error| EvaluationError::NothingToEvaluate(crate::util::error_chain(&error)))?;
    Ok(LmWriter::baseline(lm, &request.device))
}

/// What every set of stories is scored against: the photos' references, the genre classifier and the
/// fluency judges.
struct Scoring<'a> {
    references: Vec<Vec<String>>,
    tfidf: TfIdf,
    reference_vectors: Vec<HashMap<String, f32>>,
    /// How many photos make the top 10%.
    top: usize,
    shuffled: Vec<usize>,
    classifier: &'a GenreClassifier,
    judges: &'a FluencyJudges,
    /// The decoder's genre's words, by genre index.
    genre_words: Option<&'a [HashSet<String>]>,
    seed: u64,
}

impl<'a> Scoring<'a> {
    fn new(
        photos: &[TestPhoto],
        classifier: &'a GenreClassifier,
        judges: &'a FluencyJudges,
        genre_words: Option<&'a [HashSet<String>]>,
        seed: u64,
    ) -> Self {
        let references: Vec<Vec<String>> =
            photos.iter().map(|photo| content_words(&photo.references.join(" "))).collect();
        let tfidf = TfIdf::fit(&references);
        let reference_vectors = references.iter().map(|words| tfidf.vector(words)).collect();
        let mut shuffled: Vec<usize> = (0..photos.len()).collect();
        shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let top = (photos.len() as f32 * 0.1).ceil() as usize;
        Scoring { references, tfidf, reference_vectors, top, shuffled, classifier, judges, genre_words, seed }
    }

    /// The figures of `stories[photo][genre]`.
    fn score(&self, stories: &[Vec<String>], genre_count: usize) -> StoryScores {
        let photos = stories.len();
        let story_words: Vec<Vec<Vec<String>>> =
            stories.iter().map(|per_genre| per_genre.iter().map(|story| content_words(story)).collect()).collect();
        let rank = |words: &[String], photo: usize| {
            let vector = self.tfidf.vector(words);
            let scores: Vec<f32> = self.reference_vectors.iter().map(|reference| cosine(&vector, reference)).collect();
            rank_of(&scores, photo)
        };
        let (mut in_top, mut in_top_shuffled, mut rank_sum, mut no_shared) = (0usize, 0usize, 0usize, 0usize);
        for (photo, per_genre) in story_words.iter().enumerate() {
            let reference: HashSet<&String> = self.references[photo].iter().collect();
            for words in per_genre {
                let own = rank(words, photo);
                rank_sum += own;
                in_top += usize::from(own <= self.top);
                in_top_shuffled += usize::from(rank(words, self.shuffled[photo]) <= self.top);
                no_shared += usize::from(!words.iter().any(|word| reference.contains(word)));
            }
        }
        let total = (photos * genre_count).max(1);

        let (mut right, mut paired_right) = (0usize, 0usize);
        for per_genre in &story_words {
            let posteriors: Vec<Vec<f32>> =
                per_genre.iter().map(|words| self.classifier.log_posterior(words)).collect();
            for (genre, posterior) in posteriors.iter().enumerate() {
                right += usize::from(argmax(posterior) == genre);
                let scores: Vec<f32> = posteriors.iter().map(|posterior| posterior[genre]).collect();
                paired_right += usize::from(argmax(&scores) == genre);
            }
        }

        let all: Vec<&str> = stories.iter().flatten().map(String::as_str).collect();
        let tokenized: Vec<Vec<String>> = all.iter().map(|story| all_words(story)).collect();
        let (mut cross_genre, mut cross_genre_pairs) = (0.0f32, 0usize);
        for per_genre in &story_words {
            for a in 0..genre_count {
                for b in a + 1..genre_count {
                    cross_genre += jaccard(&per_genre[a], &per_genre[b]);
                    cross_genre_pairs += 1;
                }
            }
        }
        let (mut cross_photo, mut cross_photo_pairs) = (0.0f32, 0usize);
        for genre in 0..genre_count {
            for photo in 0..photos {
                let next = (photo + 1) % photos;
                cross_photo += jaccard(&story_words[photo][genre], &story_words[next][genre]);
                cross_photo_pairs += 1;
            }
        }
        let genre_words_per_100 = self.genre_words.map(|lists| {
            let by_genre: Vec<Vec<&[String]>> = (0..genre_count)
                .map(|genre| story_words.iter().map(|per_genre| per_genre[genre].as_slice()).collect())
                .collect();
            genre_words_per_100(&by_genre, lists)
        });
        let fluency = self.judges.stories(&tokenized, self.seed);
        let real = self.judges.real;
        StoryScores {
            relevance_top10: in_top as f32 / total as f32,
            relevance_top10_shuffled: in_top_shuffled as f32 / total as f32,
            relevance_mean_rank: rank_sum as f32 / total as f32,
            stories_sharing_no_caption_word: no_shared as f32 / total as f32,
            genre_accuracy: right as f32 / total as f32,
            genre_paired_accuracy: paired_right as f32 / total as f32,
            distinct_1: distinct_n(&tokenized, 1),
            distinct_2: distinct_n(&tokenized, 2),
            top_opening_share: top_opening_share(&all),
            cross_genre_jaccard: cross_genre / cross_genre_pairs.max(1) as f32,
            cross_photo_jaccard: cross_photo / cross_photo_pairs.max(1) as f32,
            mean_words: tokenized.iter().map(Vec::len).sum::<usize>() as f32 / total as f32,
            fluency_ratio: fluency.zip(real).map(|(own, real)| own.cross_entropy / real.cross_entropy),
            word_order_ratio: fluency.zip(real).map(|(own, real)| own.word_order_gain() / real.word_order_gain()),
            fluency,
            genre_words_per_100,
        }
    }
}

/// Of every 100 content words of each genre's texts (`texts[genre]`), how many are in that genre's list;
/// the mean over the genres that have texts.
fn genre_words_per_100(texts: &[Vec<&[String]>], lists: &[HashSet<String>]) -> f32 {
    let densities: Vec<f32> = texts
        .iter()
        .zip(lists)
        .filter_map(|(texts, list)| {
            let words: usize = texts.iter().map(|words| words.len()).sum();
            let listed: usize = texts.iter().flat_map(|words| words.iter()).filter(|word| list.contains(*word)).count();
            (words > 0).then(|| 100.0 * listed as f32 / words as f32)
        })
        .collect();
    densities.iter().sum::<f32>() / densities.len().max(1) as f32
}

/// Words of a held-out passage the judges score: about a story's length.
const JUDGED_PASSAGE_WORDS: usize = 60;
/// Real passages taken from each held-out book, evenly.
const JUDGED_PASSAGES_PER_BOOK: usize = 50;
/// Judges (folds of the held-out books), and the words each counts at most (taken evenly from its books;
/// about 300 MB of n-grams each):
/// 24 books counted whole by 24 judges would hold tens of gigabytes of n-grams.
const JUDGES: usize = 4;
const JUDGE_WORDS: usize = 1_500_000;

/// One fluency judge per fold of the held-out books (book i in fold i mod 4), each counted from the other
/// folds' books, and the real passages of each fold's books scored by the judge that did not count them.
struct FluencyJudges {
    judges: Vec<FluencyJudge>,
    real: Option<Fluency>,
    real_count: usize,
}

impl FluencyJudges {
    fn of(books: &[HeldOutText], seed: u64) -> FluencyJudges {
        if books.len() < 2 {
            return FluencyJudges { judges: Vec::new(), real: None, real_count: 0 };
        }
        let words: Vec<Vec<String>> = books.iter().map(|book| all_words(&book.text)).collect();
        let folds = JUDGES.min(books.len());
        let mut judges = Vec::with_capacity(folds);
        let (mut plain, mut mixed, mut count) = (0.0f64, 0.0f64, 0usize);
        for fold in 0..folds {
            let chunks: Vec<&[String]> = words
                .iter()
                .enumerate()
                .filter(|(index, _)| index % folds != fold)
                .flat_map(|(_, words)| words.chunks(JUDGED_PASSAGE_WORDS))
                .collect();
            let counted: Vec<Vec<String>> = crate::story::passages::evenly(&chunks, JUDGE_WORDS / JUDGED_PASSAGE_WORDS)
                .into_iter()
                .map(<[String]>::to_vec)
                .collect();
            let judge = FluencyJudge::train(&counted);
            let passages: Vec<Vec<String>> = words
                .iter()
                .enumerate()
                .filter(|(index, _)| index % folds == fold)
                .flat_map(|(_, words)| {
                    let whole: Vec<Vec<String>> = words
                        .chunks(JUDGED_PASSAGE_WORDS)
                        .filter(|chunk| chunk.len() == JUDGED_PASSAGE_WORDS)
                        .map(<[String]>::to_vec)
                        .collect();
                    crate::story::passages::evenly(&whole, JUDGED_PASSAGES_PER_BOOK)
                })
                .collect();
            if let Some(scores) = fluency(&judge, &passages, seed) {
                plain += scores.cross_entropy * passages.len() as f64;
                mixed += scores.shuffled_cross_entropy * passages.len() as f64;
                count += passages.len();
            }
            judges.push(judge);
        }
        let real = (count > 0)
            .then(|| Fluency { cross_entropy: plain / count as f64, shuffled_cross_entropy: mixed / count as f64 });
        FluencyJudges { judges, real, real_count: count }
    }

    /// Every judge's mean score of `stories` (words of each), averaged over the judges.
    fn stories(&self, stories: &[Vec<String>], seed: u64) -> Option<Fluency> {
        let scored: Vec<Fluency> = self.judges.iter().filter_map(|judge| fluency(judge, stories, seed)).collect();
        (!scored.is_empty()).then(|| Fluency {
            cross_entropy: scored.iter().map(|f| f.cross_entropy).sum::<f64>() / scored.len() as f64,
            shuffled_cross_entropy: scored.iter().map(|f| f.shuffled_cross_entropy).sum::<f64>() / scored.len() as f64,
        })
    }
}

/// The test-split photos of the annotation files that are on disk, in file order.
fn test_photos(
    sets: &[(DatasetKind, PathBuf, PathBuf)],
    valid_percent: u32,
    test_percent: u32,
) -> Result<Vec<TestPhoto>, EvaluationError> {
    let mut photos = Vec::new();
    for (kind, captions, images) in sets {
        let dataset = CaptionDataset::read(*kind, captions)?;
        for image in dataset.images {
            let path = images.join(&image.file_name);
            if split_of(&image.key, valid_percent, test_percent) == Split::Test
                && crate::corpus::discover::stays_inside(&image.file_name)
                && path.is_file()
            {
                photos.push(TestPhoto {
                    key: image.key,
                    path,
                    references: image.captions.iter().map(|caption| caption.text.clone()).collect(),
                    caption_ids: image.captions.into_iter().map(|caption| caption.id).collect(),
                });
            }
        }
    }
    Ok(photos)
}

/// The books the decoder did not train on (its manifest's held-out books, or `request.corpus`'s validation
/// split), tokenized with the encoder's vocabulary, which is the decoder's (the generator checked it).
fn held_out_books(request: &StoryEvalRequest, generator: &Generator) -> Result<Vec<HeldOutText>, EvaluationError> {
    decoder_held_out(
        request.corpus.as_deref(),
        request.books_dir.as_deref(),
        &request.models.decoder,
        generator.decoder.held_out(),
        generator.encoder.vocabulary(),
    )
}

/// Passages of the held-out books, labelled by genre (books in none or in several of the evaluated genres
/// are left out: they would teach the classifier both).
fn classifier_passages(request: &StoryEvalRequest, books: &[HeldOutText]) -> Vec<Labelled> {
    let mut examples = Vec::new();
    for (book_index, book) in books.iter().enumerate() {
        let genres: Vec<usize> = request
            .genres
            .iter()
            .enumerate()
            .filter(|(_, genre)| {
                request.genre_tags.get(*genre).is_some_and(|tags| tags.iter().any(|tag| book.tags.contains(tag)))
            })
            .map(|(index, _)| index)
            .collect();
        let [genre] = genres[..] else { continue };
        let words: Vec<String> = content_words(&book.text);
        let chunks: Vec<&[String]> = words.chunks(PASSAGE_CONTENT_WORDS).filter(|chunk| chunk.len() >= 8).collect();
        for chunk in crate::story::passages::evenly(&chunks, PASSAGES_PER_BOOK) {
            examples.push(Labelled { words: chunk.to_vec(), genre, book: book_index });
        }
    }
    examples
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn genre_words_are_counted_per_hundred_words_of_their_own_genre_and_averaged() {
        let lists: Vec<HashSet<String>> =
            vec![["police", "crime"].map(String::from).into(), ["planet"].map(String::from).into()];
        let thriller = [words("police crime street door"), words("police house")];
        // `planet` in a thriller is not the thriller's word.
        let science = [words("planet ship planet police")];
        let texts = vec![
            thriller.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            science.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        ];
        // Thriller: 3 of 6 words (50 per 100); sci-fi: 2 of 4 (50).
        assert!((genre_words_per_100(&texts, &lists) - 50.0).abs() < 1e-4);
        let thriller_only = vec![texts[0].clone(), Vec::new()];
        assert!((genre_words_per_100(&thriller_only, &lists) - 50.0).abs() < 1e-4);
        let none: Vec<Vec<&[String]>> = vec![Vec::new(), Vec::new()];
        assert_eq!(genre_words_per_100(&none, &lists), 0.0);
    }
}
