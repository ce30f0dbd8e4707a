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

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::EvaluationError;
use super::books::decoder_held_out;
use super::genre::{GenreClassifier, Labelled, argmax, leave_one_book_out};
use super::text::{TfIdf, all_words, content_words, cosine, distinct_n, jaccard, rank_of, top_opening_share};
use crate::captions::{CaptionDataset, DatasetKind, Split, split_of};
use crate::config::GenerateConfig;
use crate::progress::Progress;
use crate::story::decoder::load_decoder;
use crate::story::generate::{Generator, ModelPaths, StoryInput, StoryOptions};
use crate::util::cancel::CancelFlag;
use crate::vision::load_image;

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
    pub relevance_top10: f32,
    pub relevance_top10_shuffled: f32,
    pub relevance_chance: f32,
    pub relevance_mean_rank: f32,
    pub stories_sharing_no_caption_word: f32,
    pub genre_accuracy: f32,
    pub genre_paired_accuracy: f32,
    pub genre_chance: f32,
    pub classifier_books: usize,
    pub classifier_leave_one_book_out: Option<f32>,
    pub distinct_1: f32,
    pub distinct_2: f32,
    pub top_opening_share: f32,
    pub cross_genre_jaccard: f32,
    pub cross_photo_jaccard: f32,
    pub mean_words: f32,
    pub seconds: f32,
    pub samples: Vec<StorySample>,
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
    if let Some(limit) = request.max_photos {
        photos = crate::story::passages::evenly(&photos, limit);
    }
    if photos.len() < 10 {
        return Err(EvaluationError::NothingToEvaluate(format!(
            "{} test photos are on disk (at least 10 are needed to rank a photo's captions among others')",
            photos.len()
        )));
    }
    let classifier_data = classifier_passages(request)?;
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

    progress.set_total((photos.len() * genre_count) as u64);
    let mut stories: Vec<Vec<String>> = Vec::with_capacity(photos.len());
    for (photo_index, photo) in photos.iter().enumerate() {
        request.cancel.check().map_err(crate::story::generate::GenerateError::from)?;
        let image = load_image(&photo.path)?;
        let (captions, thoughts) = generator.captions(&StoryInput::Image(image), request.generate.k, &excluded)?;
        let mut per_genre = Vec::with_capacity(genre_count);
        for (genre_index, genre) in request.genres.iter().enumerate() {
            let mut options = StoryOptions::new(genre, &request.generate);
            // A seed per story (used with `generate.temperature` above 0), so noise differs between stories.
            options.seed = request.seed.wrapping_add((photo_index * genre_count + genre_index) as u64);
            let story = generator.write(captions.clone(), &thoughts, &options, &request.cancel)?;
            per_genre.push(story.story);
            progress.advance(1);
        }
        stories.push(per_genre);
    }
    progress.finish();

    // Relevance.
    let references: Vec<Vec<String>> = photos.iter().map(|photo| content_words(&photo.references.join(" "))).collect();
    let tfidf = TfIdf::fit(&references);
    let reference_vectors: Vec<_> = references.iter().map(|words| tfidf.vector(words)).collect();
    let top = (photos.len() as f32 * 0.1).ceil() as usize;
    let story_words: Vec<Vec<Vec<String>>> =
        stories.iter().map(|per_genre| per_genre.iter().map(|story| content_words(story)).collect()).collect();
    let rank = |words: &[String], photo: usize| {
        let vector = tfidf.vector(words);
        let scores: Vec<f32> = reference_vectors.iter().map(|reference| cosine(&vector, reference)).collect();
        rank_of(&scores, photo)
    };
    let mut shuffled: Vec<usize> = (0..photos.len()).collect();
    shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(request.seed));
    let (mut in_top, mut in_top_shuffled, mut rank_sum, mut no_shared) = (0usize, 0usize, 0usize, 0usize);
    for (photo, per_genre) in story_words.iter().enumerate() {
        let reference: HashSet<&String> = references[photo].iter().collect();
        for words in per_genre {
            let own = rank(words, photo);
            rank_sum += own;
            in_top += usize::from(own <= top);
            in_top_shuffled += usize::from(rank(words, shuffled[photo]) <= top);
            no_shared += usize::from(!words.iter().any(|word| reference.contains(word)));
        }
    }
    let total = photos.len() * genre_count;

    // Genre.
    let (mut right, mut paired_right) = (0usize, 0usize);
    for per_genre in &story_words {
        let posteriors: Vec<Vec<f32>> = per_genre.iter().map(|words| classifier.log_posterior(words)).collect();
        for (genre, posterior) in posteriors.iter().enumerate() {
            right += usize::from(argmax(posterior) == genre);
            let scores: Vec<f32> = posteriors.iter().map(|posterior| posterior[genre]).collect();
            paired_right += usize::from(argmax(&scores) == genre);
        }
    }

    // Diversity and overlap.
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
        for photo in 0..photos.len() {
            let next = (photo + 1) % photos.len();
            cross_photo += jaccard(&story_words[photo][genre], &story_words[next][genre]);
            cross_photo_pairs += 1;
        }
    }
    let samples = photos
        .iter()
        .zip(&stories)
        .take(2)
        .flat_map(|(photo, per_genre)| {
            per_genre.iter().zip(&request.genres).map(|(story, genre)| StorySample {
                photo: photo.key.clone(),
                genre: genre.clone(),
                story: story.clone(),
            })
        })
        .collect();
    Ok(StoryEvaluation {
        photos: photos.len(),
        genres: request.genres.clone(),
        stories: total,
        captions: captions_from.into(),
        relevance_top10: in_top as f32 / total as f32,
        relevance_top10_shuffled: in_top_shuffled as f32 / total as f32,
        relevance_chance: top as f32 / photos.len() as f32,
        relevance_mean_rank: rank_sum as f32 / total as f32,
        stories_sharing_no_caption_word: no_shared as f32 / total as f32,
        genre_accuracy: right as f32 / total as f32,
        genre_paired_accuracy: paired_right as f32 / total as f32,
        genre_chance: 1.0 / genre_count as f32,
        classifier_books,
        classifier_leave_one_book_out: leave_one_out,
        distinct_1: distinct_n(&tokenized, 1),
        distinct_2: distinct_n(&tokenized, 2),
        top_opening_share: top_opening_share(&all),
        cross_genre_jaccard: cross_genre / cross_genre_pairs.max(1) as f32,
        cross_photo_jaccard: cross_photo / cross_photo_pairs.max(1) as f32,
        mean_words: tokenized.iter().map(Vec::len).sum::<usize>() as f32 / total as f32,
        seconds: started.elapsed().as_secs_f32(),
        samples,
    })
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

/// Passages of the decoder's held-out books, labelled by genre (books in none or in several of the
/// evaluated genres are left out: they would teach the classifier both).
fn classifier_passages(request: &StoryEvalRequest) -> Result<Vec<Labelled>, EvaluationError> {
    let (_, vocabulary, manifest) = load_decoder(&request.models.decoder, &request.device)?;
    let books = decoder_held_out(
        request.corpus.as_deref(),
        request.books_dir.as_deref(),
        &request.models.decoder,
        &manifest,
        &vocabulary,
    )?;
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
    Ok(examples)
}
