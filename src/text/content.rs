//! Which words carry content: what a story's relevance to a photo is measured on, and what a decoder is given
//! as keywords (the commonest content words of a photo's captions).

use crate::text::tokenize::for_each_word;
use crate::text::vocab::{EOS_ID, UNK_ID, Vocabulary};

/// Function words and the commonest verbs of narration: words every story and caption has, which say
/// nothing about a photo or a genre. Kept short and fixed so that figures stay comparable between runs.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "said",
    "says",
    "say",
    "one",
    "upon",
    "mr",
    "mrs",
    "miss",
    "shall",
    "must",
    "may",
    "might",
    "yet",
    "much",
    "many",
    "well",
    "also",
    "us",
    "ever",
    "never",
    "let",
    "like",
    "come",
    "came",
    "go",
    "went",
    "get",
    "got",
    "know",
    "knew",
    "see",
    "saw",
    "seemed",
    "made",
    "make",
    "little",
    "great",
    "man",
    "old",
    "good",
    "two",
    "first",
    "last",
    "long",
    "way",
    "time",
    "thing",
    "things",
    "nothing",
    "something",
    "back",
    "even",
    "still",
    "though",
    "without",
    "within",
    "<unk>",
    "<eos>",
];

/// Whether a lower-case word carries content: letters only, two or more, not a stopword.
pub fn is_content_word(word: &str) -> bool {
    word.chars().count() >= 2 && word.chars().all(char::is_alphabetic) && !STOPWORDS.contains(&word)
}

/// Slurs that old novels print and a story never should: a language-model decoder never writes them as
/// whole-word tokens, and no word list pulls toward them. Lower-case.
const SLURS: &[&str] = &[
    "nigger",
    "niggers",
    "nigga",
    "niggas",
    "darkey",
    "darkeys",
    "darky",
    "darkies",
    "coolie",
    "coolies",
    "chink",
    "chinks",
    "chinaman",
    "injun",
    "injuns",
    "redskin",
    "redskins",
    "squaw",
    "squaws",
    "kike",
    "kikes",
    "wop",
    "wops",
    "dago",
    "dagoes",
    "dagos",
    "spic",
    "spics",
    "gook",
    "gooks",
    "jap",
    "japs",
    "sheeny",
    "hottentot",
    "hottentots",
    "halfbreed",
    "mulatto",
    "mulattoes",
    "faggot",
    "faggots",
];

/// Whether a lower-case word is one of the slurs a story never writes.
pub fn is_slur(word: &str) -> bool {
    SLURS.contains(&word)
}

/// Lower-case words of `text` that carry content.
pub fn content_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut buffer = String::new();
    for_each_word(text, true, &mut buffer, |word| {
        if is_content_word(word) {
            words.push(word.to_string());
        }
    });
    words
}

/// The content words of `text`, each once, in order of first use (what a caption bank stores per caption).
pub fn distinct_content_words(text: &str) -> Vec<String> {
    let mut words = content_words(text);
    let mut seen = std::collections::HashSet::new();
    words.retain(|word| seen.insert(word.clone()));
    words
}

/// Per id of `vocabulary`: whether the word carries content (the ids a decoder may be given as keywords).
pub fn content_ids(vocabulary: &Vocabulary) -> Vec<bool> {
    vocabulary.words().iter().map(|word| is_content_word(&word.to_lowercase())).collect()
}

/// The keywords of a set of captions, given as their content words: the `limit` commonest (ids of
/// `vocabulary`; unknown words skipped), counting each word once per caption; ties go to the word seen
/// first (captions arrive nearest first).
pub fn keywords<S: AsRef<str>>(captions: &[Vec<S>], vocabulary: &Vocabulary, limit: usize) -> Vec<u32> {
    let per_caption: Vec<Vec<u32>> = captions
        .iter()
        .map(|words| {
            let mut ids: Vec<u32> = Vec::new();
            for word in words {
                let id = vocabulary.id(&word.as_ref().to_lowercase());
                if id != UNK_ID && id != EOS_ID && !ids.contains(&id) {
                    ids.push(id);
                }
            }
            ids
        })
        .collect();
    most_common(&per_caption, limit)
}

/// The `limit` ids that occur in the most lists, ties by first occurrence.
pub fn most_common(lists: &[Vec<u32>], limit: usize) -> Vec<u32> {
    let mut counts: Vec<(u32, usize, usize)> = Vec::new(); // (id, count, first position)
    let mut position = 0;
    for list in lists {
        for &id in list {
            match counts.iter_mut().find(|(known, _, _)| *known == id) {
                Some((_, count, _)) => *count += 1,
                None => counts.push((id, 1, position)),
            }
            position += 1;
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    counts.into_iter().take(limit).map(|(id, _, _)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_the_commonest_content_words_once_per_caption() {
        let vocabulary = Vocabulary::from_texts(["dog dog grass ball frisbee the a"], 100, 1);
        let captions = ["A dog and a dog on the grass", "A dog with a ball", "Grass", "a zebra"];
        let captions: Vec<Vec<String>> = captions.iter().map(|caption| content_words(caption)).collect();
        let ids = keywords(&captions, &vocabulary, 3);
        let words: Vec<&str> = ids.iter().filter_map(|&id| vocabulary.word(id)).collect();
        assert_eq!(words, ["dog", "grass", "ball"]);
        assert_eq!(keywords(&captions, &vocabulary, 0), Vec::<u32>::new());
        assert_eq!(distinct_content_words("A dog and a dog on the grass"), ["dog", "grass"]);
        assert!(!is_content_word("the") && is_content_word("dog") && !is_content_word("x1"));
    }
}
