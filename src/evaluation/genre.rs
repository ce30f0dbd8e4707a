//! A genre classifier that knows nothing of the story models: multinomial naive Bayes over content words,
//! trained on passages of held-out novels. It judges whether a story reads like its genre, and its own
//! leave-one-book-out accuracy says how far that judgement can be trusted.

use std::collections::HashMap;

/// One labelled training text: its content words, its genre (an index) and the book it came from.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub words: Vec<String>,
    pub genre: usize,
    pub book: usize,
}

/// Multinomial naive Bayes with add-one smoothing and uniform priors (the books' genre mix is not the
/// stories' mix, which is uniform by construction).
#[derive(Debug, Clone)]
pub struct GenreClassifier {
    /// `log P(word | genre)` per genre.
    log_likelihood: Vec<HashMap<String, f32>>,
    /// `log P(unseen word | genre)` per genre.
    unseen: Vec<f32>,
}

impl GenreClassifier {
    pub fn train(examples: &[&Labelled], genres: usize) -> GenreClassifier {
        let mut counts: Vec<HashMap<String, f32>> = vec![HashMap::new(); genres];
        let mut vocabulary: HashMap<&str, ()> = HashMap::new();
        for example in examples {
            for word in &example.words {
                *counts[example.genre].entry(word.clone()).or_default() += 1.0;
                vocabulary.insert(word, ());
            }
        }
        let size = vocabulary.len() as f32 + 1.0;
        let mut log_likelihood = Vec::with_capacity(genres);
        let mut unseen = Vec::with_capacity(genres);
        for genre_counts in counts {
            let total: f32 = genre_counts.values().sum::<f32>() + size;
            unseen.push((1.0 / total).ln());
            log_likelihood
                .push(genre_counts.into_iter().map(|(word, count)| (word, ((count + 1.0) / total).ln())).collect());
        }
        GenreClassifier { log_likelihood, unseen }
    }

    /// `log P(genre | words)` for every genre (normalised over the genres).
    pub fn log_posterior(&self, words: &[String]) -> Vec<f32> {
        let scores: Vec<f32> = self
            .log_likelihood
            .iter()
            .zip(&self.unseen)
            .map(|(table, unseen)| words.iter().map(|word| table.get(word).copied().unwrap_or(*unseen)).sum())
            .collect();
        let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = top + scores.iter().map(|score| (score - top).exp()).sum::<f32>().ln();
        scores.iter().map(|score| score - log_sum).collect()
    }

    /// The most likely genre of `words`.
    pub fn classify(&self, words: &[String]) -> usize {
        argmax(&self.log_posterior(words))
    }
}

pub fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(index, _)| index)
}

/// Accuracy on each book's passages of a classifier trained on the other books (every genre keeps at
/// least one other book, or that book is not scored). `None` when no book could be scored.
pub fn leave_one_book_out(examples: &[Labelled], genres: usize) -> Option<f32> {
    let mut books: Vec<(usize, usize)> = examples.iter().map(|example| (example.book, example.genre)).collect();
    books.sort_unstable();
    books.dedup();
    let (mut right, mut scored) = (0usize, 0usize);
    for &(book, genre) in &books {
        if books.iter().filter(|&&(other, other_genre)| other != book && other_genre == genre).count() == 0 {
            continue;
        }
        let training: Vec<&Labelled> = examples.iter().filter(|example| example.book != book).collect();
        let classifier = GenreClassifier::train(&training, genres);
        for example in examples.iter().filter(|example| example.book == book) {
            scored += 1;
            right += usize::from(classifier.classify(&example.words) == example.genre);
        }
    }
    (scored > 0).then(|| right as f32 / scored as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(text: &str, genre: usize, book: usize) -> Labelled {
        Labelled { words: text.split_whitespace().map(str::to_string).collect(), genre, book }
    }

    #[test]
    fn words_of_a_genre_pull_toward_it() {
        let examples = [
            labelled("ship sea captain island sea", 0, 0),
            labelled("captain ship harbour sail", 0, 1),
            labelled("robot star planet laser", 1, 2),
            labelled("planet robot station orbit", 1, 3),
        ];
        let refs: Vec<&Labelled> = examples.iter().collect();
        let classifier = GenreClassifier::train(&refs, 2);
        assert_eq!(classifier.classify(&["sea".into(), "captain".into()]), 0);
        assert_eq!(classifier.classify(&["robot".into(), "unknownword".into()]), 1);
        let posterior = classifier.log_posterior(&["sea".into()]);
        assert!((posterior.iter().map(|p| p.exp()).sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(leave_one_book_out(&examples, 2), Some(1.0));
    }
}
