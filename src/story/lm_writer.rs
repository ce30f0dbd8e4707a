//! The language-model story decoder (`[decoder] kind = "lm"`) behind the writer seam, and the prompt-only
//! baseline that `evaluate story` measures it against.
//!
//! The trained decoder reads `[prefix from the vector][genre tokens][keyword prompt]` and writes the passage
//! that follows; the baseline is the bare model asked, as a chat, for the opening of a story in the genre
//! about the keywords: what a "caption + LLM" app does, with no vector and no training. Either way the
//! story is searched for with the shared strategies (beam search through [`Scorer`], or nucleus sampling),
//! with the rules a story needs on a model that writes any text: no control tokens, markup or digits'
//! stand-ins of chat formats (`<`, `*`, `#`, `|`, ...), the end allowed only after `min_words`, a line break
//! or end-of-text taken as the end, each content word used again costing `repetition_penalty`, no n-gram
//! of `no_repeat_ngram` words written twice, a few of the genre's words and the keywords pulled toward
//! ([`Pulls`]), and the text cut after its last full sentence.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::decoder::{ContextCentre, DecoderError};
use super::generate::StoryOptions;
use super::genre_words::GenreWords;
use super::lm_decoder::{LmDecoderManifest, keyword_prompt, load_lm_decoder_as};
use super::writer::{StoryEvent, Watch, Written};
use crate::config::Strategy;
use crate::language_model::PretrainedLm;
use crate::language_model::decoding::read_decoding;
use crate::model::beam::{BeamSettings, Scorer, Watched, beam_search, repeating_words};
use crate::model::llama::KvCache;
use crate::model::lm_steering::LmSteering;
use crate::model::packed::DecodingLm;
use crate::model::sampling::{SamplingSettings, sample};
use crate::text::content::{is_content_word, is_slur};
use crate::util::cancel::{CancelFlag, Interrupted};

/// Characters of markup and chat formats that never belong in a story.
const MARKUP: &[char] = &['<', '>', '*', '#', '_', '[', ']', '{', '}', '|', '\\', '`', '~', '^', '=', '@', '$', '%'];

/// What the search needs to know of each token of the model's vocabulary.
#[derive(Debug)]
pub struct TokenFacts {
    /// Ends the story: control tokens and anything holding a line break.
    ends: Vec<bool>,
    /// Never written: markup.
    banned: Vec<bool>,
    /// Does not start a word (continues one, or is punctuation): does not count toward a story's length.
    non_word: Vec<bool>,
    /// Starts a content word: what the repetition penalty counts.
    content: Vec<bool>,
    /// The tokens that are a whole content word (lower-cased), with or without a capital: what a word
    /// pull ([`GenreWords`]) can raise.
    word_tokens: HashMap<String, Vec<u32>>,
}

impl TokenFacts {
    pub fn of<M>(lm: &PretrainedLm<M>) -> TokenFacts {
        let size = lm.config.vocab_size;
        let mut facts = TokenFacts {
            ends: vec![false; size],
            banned: vec![false; size],
            non_word: vec![true; size],
            content: vec![false; size],
            word_tokens: HashMap::new(),
        };
        for id in 0..size {
            let text = lm.tokenizer.decode(&[id as u32], false).unwrap_or_default();
            if lm.control_tokens.contains(&(id as u32)) || text.contains('\n') {
                facts.ends[id] = true;
                continue;
            }
            if text.is_empty() || text.contains(MARKUP) || text.chars().any(|c| c.is_control()) {
                facts.banned[id] = true;
                continue;
            }
            let word = text.strip_prefix(' ').unwrap_or(&text);
            let starts_word = text.starts_with(' ') && word.chars().next().is_some_and(char::is_alphanumeric);
            facts.non_word[id] = !starts_word;
            let lower = word.to_lowercase();
            if starts_word && is_slur(&lower) {
                facts.banned[id] = true;
                continue;
            }
            facts.content[id] = starts_word && is_content_word(&lower);
            if facts.content[id] {
                facts.word_tokens.entry(lower).or_default().push(id as u32);
            }
        }
        facts
    }

    /// The tokens of each of `words` that has whole-word tokens, with its weight times `strength`.
    fn word_pulls(&self, words: &[(String, f32)], strength: f32) -> Vec<Pull> {
        words
            .iter()
            .filter_map(|(word, weight)| {
                let tokens = self.word_tokens.get(word)?.clone();
                Some(Pull { tokens, nats: weight * strength })
            })
            .collect()
    }

    /// Adjusts one row of log-probabilities: the end token takes the mass of every ending token, the
    /// others and markup are forbidden, content words written before lose `repetition` per use, and each
    /// pulled token not yet written gains its pull (see [`Pulls`]; `since_pulled`: tokens written since the
    /// story's last pulled word, `usize::MAX` if none).
    fn adjust(&self, row: &mut [f32], end: u32, written: &[u32], since_pulled: usize, repetition: f32, pulls: &Pulls) {
        let mut end_mass = f32::NEG_INFINITY;
        for (id, value) in row.iter_mut().enumerate() {
            if self.ends[id] {
                end_mass = log_add(end_mass, *value);
                *value = f32::NEG_INFINITY;
            } else if self.banned[id] {
                *value = f32::NEG_INFINITY;
            }
        }
        row[end as usize] = end_mass;
        if since_pulled >= pulls.spacing {
            let genre = if pulls.pulling_genre(written) { pulls.genre.as_slice() } else { &[] };
            for pull in genre.iter().chain(&pulls.keywords) {
                if !pull.tokens.iter().any(|id| written.contains(id)) {
                    pull.tokens.iter().for_each(|&id| row[id as usize] += pull.nats);
                }
            }
        }
        if repetition > 0.0 {
            for &id in written {
                row[id as usize] -= repetition;
            }
        }
    }
}

/// Words a story is pulled toward, each until the story has written it: the genre's words, none once the
/// story has `limit` of them (a few of a genre's words make its voice, more make a list of them), and the
/// keywords; nothing is pulled within `spacing` tokens after a pulled word of either kind, so they do not
/// come in chains or lists ("police cat detective", "lion, elephant, ape") unless the model itself would
/// write them so.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pulls {
    pub genre: Vec<Pull>,
    pub limit: usize,
    pub keywords: Vec<Pull>,
    pub spacing: usize,
}

/// One word's tokens (with and without a capital) and the nats each gains.
#[derive(Debug, Clone, PartialEq)]
pub struct Pull {
    pub tokens: Vec<u32>,
    pub nats: f32,
}

impl Pulls {
    fn is_genre(&self, id: u32) -> bool {
        self.genre.iter().any(|pull| pull.tokens.contains(&id))
    }

    /// Tokens since the last of `since_pulled` after `token` is written.
    fn after(&self, since_pulled: usize, token: u32) -> usize {
        if self.is_pulled(token) { 0 } else { since_pulled.saturating_add(1) }
    }

    fn is_pulled(&self, id: u32) -> bool {
        self.is_genre(id) || self.keywords.iter().any(|pull| pull.tokens.contains(&id))
    }

    fn pulling_genre(&self, written: &[u32]) -> bool {
        !self.genre.is_empty() && written.iter().filter(|&&id| self.is_genre(id)).count() < self.limit
    }
}

fn log_add(a: f32, b: f32) -> f32 {
    if a == f32::NEG_INFINITY {
        return b;
    }
    let high = a.max(b);
    high + ((a - high).exp() + (b - high).exp()).ln()
}

/// A pretrained model that writes stories: steered by a trained decoder, or prompted (the baseline).
pub struct LmWriter {
    pub lm: PretrainedLm<DecodingLm>,
    /// The trained steering and its manifest; `None` for the prompt-only baseline.
    pub trained: Option<(LmSteering, LmDecoderManifest)>,
    /// The words of each genre counted on the decoder's training books, if its folder has them.
    genre_words: Option<GenreWords>,
    facts: TokenFacts,
    device: Device,
}

impl std::fmt::Debug for LmWriter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LmWriter").field("lm", &self.lm).field("trained", &self.trained.is_some()).finish()
    }
}

impl LmWriter {
    pub fn load(dir: &Path, lm_path: &Path, device: &Device) -> Result<LmWriter, DecoderError> {
        let loaded =
            load_lm_decoder_as(dir, lm_path, device, |file, config, merge| read_decoding(file, config, device, merge))?;
        let genre_words = GenreWords::read(dir)
            .map_err(|error| DecoderError::Invalid { path: dir.to_path_buf(), source: error.into() })?;
        let facts = TokenFacts::of(&loaded.lm);
        Ok(LmWriter {
            lm: loaded.lm,
            trained: Some((loaded.steering, loaded.manifest)),
            genre_words,
            facts,
            device: device.clone(),
        })
    }

    /// The bare pretrained model, prompted with the genre and keywords as text.
    pub fn baseline(lm: PretrainedLm<DecodingLm>, device: &Device) -> LmWriter {
        let facts = TokenFacts::of(&lm);
        LmWriter { lm, trained: None, genre_words: None, facts, device: device.clone() }
    }

    /// The genre's words its folder lists (what the writer pulls toward), if any.
    pub fn genre_words(&self) -> Option<&GenreWords> {
        self.genre_words.as_ref()
    }

    pub fn vocabulary_hash(&self) -> &str {
        self.trained.as_ref().map_or("", |(_, manifest)| &manifest.vocabulary_hash)
    }

    pub fn context_dim(&self) -> usize {
        self.trained.as_ref().map_or(0, |(_, manifest)| manifest.context_dim)
    }

    pub fn context_centre(&self) -> Option<&ContextCentre> {
        self.trained.as_ref().and_then(|(_, manifest)| manifest.context_centre.as_ref())
    }

    /// The input vectors of the story's start: prefix and genre tokens (trained), then the prompt's tokens.
    /// With `guided`, a second row holds the same prompt after the mean passage's prefix and no genre.
    fn start_inputs(
        &self,
        vector: Option<Vec<f32>>,
        keywords: &[String],
        options: &StoryOptions,
        guided: bool,
    ) -> Tensor<3> {
        let genre = options.genre.as_str();
        let model = &self.lm.model;
        let (prefix, prompt) = match (&self.trained, vector) {
            (Some((steering, manifest)), Some(mut vector)) => {
                let genre = manifest.genres.iter().position(|name| name == genre);
                let dim = vector.len();
                let (rows, genres) = if guided { (2, vec![genre, None]) } else { (1, vec![genre]) };
                // Zero is the mean passage's vector: the decoder's vectors are centred.
                vector.resize(rows * dim, 0.0);
                let vectors = Tensor::<2>::from_data(TensorData::new(vector, [rows, dim]), &self.device);
                let prefix = steering.prefix_with_strength(vectors, &genres, options.genre_strength);
                let named = genre.filter(|_| manifest.config.lm.genre_text).map(|_| options.genre.as_str());
                (Some(prefix), keyword_prompt(named, keywords))
            }
            _ => (None, baseline_prompt(genre, keywords)),
        };
        let rows = prefix.as_ref().map_or(1, |prefix| prefix.dims()[0]);
        // A prompt is a few keywords; it is still cut to fit the context with room for the story.
        let room = self.lm.config.context_length.saturating_sub(512).max(16);
        let mut ids: Vec<i64> = self
            .lm
            .tokenizer
            .encode(prompt.as_str(), false)
            .map(|encoding| encoding.get_ids().iter().map(|&id| i64::from(id)).collect())
            .unwrap_or_default();
        ids.truncate(room);
        let embedded = (!ids.is_empty()).then(|| {
            let len = ids.len();
            let ids = ids.repeat(rows);
            model.embed(Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, len]), &self.device))
        });
        match (prefix, embedded) {
            (Some(prefix), Some(embedded)) => Tensor::cat(vec![prefix, embedded], 1),
            (Some(prefix), None) => prefix,
            (None, Some(embedded)) => embedded,
            (None, None) => model.embed(Tensor::<2, Int>::from_data(
                TensorData::new(vec![i64::from(self.lm.end_of_text)], [1, 1]),
                &self.device,
            )),
        }
    }

    /// A story from `vector` (ignored by the baseline) and the captions' content words.
    pub fn write(
        &self,
        vector: Option<Vec<f32>>,
        caption_words: &[Vec<String>],
        options: &StoryOptions,
        cancel: &CancelFlag,
        watch: &mut Watch<'_>,
    ) -> Result<Written, Interrupted> {
        let keywords = commonest_words(caption_words, options.keywords);
        watch(StoryEvent::Keywords(&keywords));
        let mut show = |tokens: &[u32]| {
            let text = self.lm.tokenizer.decode(tokens, false).unwrap_or_default();
            watch(StoryEvent::Text(&story_so_far(&text)));
        };
        let guidance =
            (self.trained.is_some() && vector.is_some() && options.guidance > 0.0).then_some(options.guidance);
        let inputs = self.start_inputs(vector, &keywords, options, guidance.is_some());
        let pulls = self.pulls(&keywords, options);
        let mut cache = KvCache::new();
        let hidden = self.lm.model.forward_embeddings(inputs, Some(&mut cache));
        let positions = hidden.dims()[1];
        let first = log_probs(self.lm.model.logits(hidden.narrow(1, positions - 1, 1)));
        let first = guide(first, guidance).into_iter().next().unwrap_or_default();
        let end = self.lm.end_of_text;
        let (tokens, beam) = match options.strategy {
            Strategy::Sample => (self.sample(cache, first, guidance, &pulls, options, cancel, &mut show)?, 1),
            Strategy::Beam => {
                let scorer = LmScorer {
                    model: &self.lm.model,
                    cache,
                    first: Some(first),
                    facts: &self.facts,
                    end,
                    repetition: options.repetition_penalty,
                    pulls: &pulls,
                    written: vec![Vec::new()],
                    since_pulled: vec![usize::MAX],
                    guidance,
                    live: 1,
                    device: self.device.clone(),
                };
                let settings = BeamSettings {
                    beam: options.beam,
                    max_words: options.max_words,
                    min_words: options.min_words,
                    // Counted in tokens, of which a word has one or two: twice the words' n.
                    no_repeat_ngram: options.no_repeat_ngram * 2,
                    length_penalty: options.length_penalty,
                    end,
                    banned: Vec::new(),
                    non_word: self.facts.non_word.clone(),
                    temperature: options.temperature,
                    seed: options.seed,
                    no_immediate_repeat: false,
                    cancel: Some(cancel.clone()),
                };
                let found = beam_search(&mut Watched::new(scorer, &mut show), &settings);
                cancel.check()?;
                (found.map(|finished| finished.words).unwrap_or_default(), options.beam)
            }
        };
        let text = self.lm.tokenizer.decode(&tokens, false).unwrap_or_default();
        Ok(Written { story: finish_story(&text, options.min_words), beam, keywords })
    }

    /// The pulls of the story's genre's words at `generate.genre_words`, up to `generate.genre_word_limit`
    /// of them (none without a list or weight), and of its keywords at `generate.lm_keyword_bonus`, at
    /// least `generate.pull_spacing` tokens apart.
    fn pulls(&self, keywords: &[String], options: &StoryOptions) -> Pulls {
        let genre = match self.genre_words.as_ref().and_then(|words| words.of_genre(&options.genre)) {
            Some(words) if options.genre_words > 0.0 => self.facts.word_pulls(words, options.genre_words),
            _ => Vec::new(),
        };
        let keywords: Vec<(String, f32)> = keywords.iter().map(|word| (word.clone(), 1.0)).collect();
        let keywords = if options.lm_keyword_bonus > 0.0 {
            self.facts.word_pulls(&keywords, options.lm_keyword_bonus)
        } else {
            Vec::new()
        };
        Pulls { genre, limit: options.genre_word_limit, keywords, spacing: options.pull_spacing }
    }

    /// Nucleus sampling, a token at a time, until the end or `max_words`.
    fn sample(
        &self,
        mut cache: KvCache,
        first: Vec<f32>,
        guidance: Option<f32>,
        pulls: &Pulls,
        options: &StoryOptions,
        cancel: &CancelFlag,
        show: &mut dyn FnMut(&[u32]),
    ) -> Result<Vec<u32>, Interrupted> {
        let settings = SamplingSettings { temperature: options.temperature, top_p: options.top_p };
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let end = self.lm.end_of_text;
        let (mut tokens, mut written, mut words) = (Vec::new(), Vec::new(), 0usize);
        let mut since_pulled = usize::MAX;
        let mut row = first;
        while words < options.max_words && tokens.len() < options.max_words * 3 {
            cancel.check()?;
            self.facts.adjust(&mut row, end, &written, since_pulled, options.repetition_penalty, pulls);
            if words < options.min_words {
                row[end as usize] = f32::NEG_INFINITY;
            }
            // As beam search does: no n-gram of `no_repeat_ngram` words (twice as many tokens) twice.
            for token in repeating_words(&tokens, options.no_repeat_ngram * 2) {
                row[token as usize] = f32::NEG_INFINITY;
            }
            let Some(token) = sample(&row, settings, &mut rng) else { break };
            if token == end {
                break;
            }
            tokens.push(token);
            show(&tokens);
            since_pulled = pulls.after(since_pulled, token);
            if !self.facts.non_word[token as usize] {
                words += 1;
            }
            if self.facts.content[token as usize] {
                written.push(token);
            }
            let rows = if guidance.is_some() { 2 } else { 1 };
            let input =
                Tensor::<2, Int>::from_data(TensorData::new(vec![i64::from(token); rows], [rows, 1]), &self.device);
            let next = log_probs(self.lm.model.forward(input, Some(&mut cache)));
            row = guide(next, guidance).into_iter().next().unwrap_or_default();
        }
        Ok(tokens)
    }
}

/// The chat prompt of the baseline: the instruction a caption-to-story app would send.
pub fn baseline_prompt(genre: &str, keywords: &[String]) -> String {
    let about = if keywords.is_empty() { String::new() } else { format!(" about {}", keywords.join(", ")) };
    format!(
        "<|im_start|>user\nWrite the opening paragraph of a {genre} story{about}.<|im_end|>\n<|im_start|>assistant\n"
    )
}

/// `[rows, 1, vocab]` logits as rows of log-probabilities.
fn log_probs(logits: Tensor<3>) -> Vec<Vec<f32>> {
    let [rows, _, vocab] = logits.dims();
    let values: Vec<f32> =
        log_softmax(logits.reshape([rows, vocab]), 1).into_data().try_to_vec::<f32>().unwrap_or_default();
    values.chunks(vocab.max(1)).map(<[f32]>::to_vec).collect()
}

/// Tokens less likely than this share of the steered row's most likely one are never picked under
/// guidance: the contrast with the unsteered row must not lift words the steered model would not write.
const GUIDANCE_FLOOR: f32 = 0.01;

/// Rows of log-probabilities as the decoder picks from them: with guidance, the first half are steered
/// and the second half the same hypotheses unsteered, and each steered row is pushed away from its
/// unsteered twin by `weight` and normalised again (tokens under [`GUIDANCE_FLOOR`] left out).
fn guide(mut rows: Vec<Vec<f32>>, guidance: Option<f32>) -> Vec<Vec<f32>> {
    let Some(weight) = guidance else { return rows };
    let unsteered = rows.split_off(rows.len() / 2);
    for (row, plain) in rows.iter_mut().zip(&unsteered) {
        let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = best + GUIDANCE_FLOOR.ln();
        for (value, &plain) in row.iter_mut().zip(plain) {
            *value = if *value < floor { f32::NEG_INFINITY } else { *value + weight * (*value - plain) };
        }
        let total = row.iter().fold(f32::NEG_INFINITY, |total, &value| log_add(total, value));
        row.iter_mut().for_each(|value| *value -= total);
    }
    rows
}

/// The `limit` words found in the most captions (each caption counts a word once), ties by spelling.
pub fn commonest_words(captions: &[Vec<String>], limit: usize) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for caption in captions {
        let mut seen: Vec<&str> = Vec::new();
        for word in caption {
            if !seen.contains(&word.as_str()) {
                seen.push(word);
                *counts.entry(word).or_default() += 1;
            }
        }
    }
    let mut words: Vec<(&str, usize)> = counts.into_iter().collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    words.into_iter().take(limit).map(|(word, _)| word.to_string()).collect()
}

/// Text decoded so far as the story shows it while it is written: whitespace collapsed, the first letter
/// capitalised (what [`finish_story`] does, but for the cut, so the finished story starts with it).
pub fn story_so_far(text: &str) -> String {
    capitalised(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn capitalised(story: String) -> String {
    let mut chars = story.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => story,
    }
}

/// The decoded text as a story: whitespace collapsed, cut after its last full sentence when that keeps
/// `min_words`, the first letter capitalised.
pub fn finish_story(text: &str, min_words: usize) -> String {
    let mut story = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let ends: Vec<usize> = story
        .char_indices()
        .filter(|&(at, c)| {
            matches!(c, '.' | '!' | '?')
                && story[at + 1..]
                    .chars()
                    .next()
                    .is_none_or(|next| next == ' ' || next == '"' || next == '\'' || next == '\u{201d}')
        })
        .map(|(at, _)| at)
        .collect();
    if let Some(&last) = ends.last() {
        let mut cut = last + 1;
        // A closing quote belongs to its sentence.
        if let Some(quote) = story[cut..].chars().next().filter(|c| matches!(c, '"' | '\'' | '\u{201d}')) {
            cut += quote.len_utf8();
        }
        if story[..cut].split_whitespace().count() >= min_words {
            story.truncate(cut);
        }
    }
    capitalised(story)
}

/// The language model behind beam search: hypotheses' keys and values follow their parents.
struct LmScorer<'a> {
    model: &'a DecodingLm,
    cache: KvCache,
    first: Option<Vec<f32>>,
    facts: &'a TokenFacts,
    end: u32,
    repetition: f32,
    /// The genre's words' pulls (see [`TokenFacts::adjust`]).
    pulls: &'a Pulls,
    /// Per live hypothesis: the content-word tokens it has written, and the tokens since its last pulled
    /// word.
    written: Vec<Vec<u32>>,
    since_pulled: Vec<usize>,
    /// `generate.guidance`: the cache holds the `live` hypotheses steered, then the same unsteered.
    guidance: Option<f32>,
    live: usize,
    device: Device,
}

impl Scorer for LmScorer<'_> {
    fn next(&mut self, parents: &[usize], last_words: Option<&[u32]>) -> Vec<Vec<f32>> {
        self.written = parents
            .iter()
            .enumerate()
            .map(|(row, &parent)| {
                let mut written = self.written.get(parent).cloned().unwrap_or_default();
                if let Some(&token) = last_words.and_then(|words| words.get(row))
                    && self.facts.content.get(token as usize).copied().unwrap_or(false)
                {
                    written.push(token);
                }
                written
            })
            .collect();
        self.since_pulled = parents
            .iter()
            .enumerate()
            .map(|(row, &parent)| {
                let since = self.since_pulled.get(parent).copied().unwrap_or(usize::MAX);
                last_words.and_then(|words| words.get(row)).map_or(since, |&token| self.pulls.after(since, token))
            })
            .collect();
        let mut rows = match (last_words, self.first.take()) {
            (None, Some(first)) => vec![first],
            (last, _) => {
                let last = last.unwrap_or(&[]);
                let mut ids: Vec<i64> = last.iter().map(|&token| i64::from(token)).collect();
                if self.guidance.is_some() {
                    let twins: Vec<usize> = parents.iter().map(|&parent| parent + self.live).collect();
                    self.cache = self.cache.select_rows(&[parents, &twins].concat());
                    ids.extend_from_within(..);
                } else {
                    self.cache = self.cache.select_rows(parents);
                }
                self.live = parents.len();
                let rows = ids.len();
                let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, 1]), &self.device);
                guide(log_probs(self.model.forward(input, Some(&mut self.cache))), self.guidance)
            }
        };
        for ((row, written), &since_pulled) in rows.iter_mut().zip(&self.written).zip(&self.since_pulled) {
            self.facts.adjust(row, self.end, written, since_pulled, self.repetition, self.pulls);
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stories_end_after_their_last_full_sentence() {
        let text = "  the door  opened. \"Who is there?\" she asked, and the wind";
        assert_eq!(finish_story(text, 3), "The door opened. \"Who is there?\"");
        // Too few words before the last sentence end: kept whole.
        assert_eq!(finish_story("It rained. And then", 5), "It rained. And then");
        assert_eq!(finish_story("Mr. Holmes was 3.5 feet away. Then", 2), "Mr. Holmes was 3.5 feet away.");
    }

    #[test]
    fn keywords_are_the_words_of_the_most_captions() {
        let captions = vec![
            vec!["cat".to_string(), "pool".into(), "cat".into()],
            vec!["cat".to_string(), "boy".into()],
            vec!["boy".to_string(), "ball".into()],
        ];
        assert_eq!(commonest_words(&captions, 3), vec!["boy", "cat", "ball"]);
    }

    #[test]
    fn guidance_pushes_what_the_steering_changes_and_keeps_out_the_implausible() {
        let steered: Vec<f32> = [0.5f32, 0.3, 0.196, 0.004].iter().map(|p| p.ln()).collect();
        let plain: Vec<f32> = [0.6f32, 0.1, 0.2, 0.0001].iter().map(|p| p.ln()).collect();
        let rows = guide(vec![steered.clone(), plain.clone()], Some(1.0));
        assert_eq!(rows.len(), 1);
        let guided = &rows[0];
        // Normalised again.
        let mass: f32 = guided.iter().map(|value| value.exp()).sum();
        assert!((mass - 1.0).abs() < 1e-5);
        // The token the steering made three times as likely gains on the one it made less likely.
        assert!(guided[1] - guided[0] > steered[1] - steered[0]);
        // Under 1% of the best steered token: out, however much the steering raised it.
        assert_eq!(guided[3], f32::NEG_INFINITY);
        // No guidance: rows as they came.
        assert_eq!(guide(vec![steered.clone(), plain], None)[0], steered);
    }

    #[test]
    fn the_end_takes_the_mass_of_every_ending_token() {
        let facts = TokenFacts {
            ends: vec![true, true, false, false],
            banned: vec![false, false, true, false],
            non_word: vec![true; 4],
            content: vec![false, false, false, true],
            word_tokens: HashMap::from([("ship".to_string(), vec![3])]),
        };
        let mut row = vec![0.25f32.ln(), 0.25f32.ln(), 0.25f32.ln(), 0.25f32.ln()];
        facts.adjust(&mut row, 0, &[3, 3], usize::MAX, 1.0, &Pulls::default());
        assert!((row[0] - 0.5f32.ln()).abs() < 1e-6);
        assert_eq!(row[1], f32::NEG_INFINITY);
        assert_eq!(row[2], f32::NEG_INFINITY);
        assert!((row[3] - (0.25f32.ln() - 2.0)).abs() < 1e-6);
    }

    #[test]
    fn a_genre_word_is_pulled_until_the_story_has_it() {
        let facts = TokenFacts {
            ends: vec![true, false, false, false],
            banned: vec![false; 4],
            non_word: vec![true; 4],
            content: vec![false, false, false, true],
            word_tokens: HashMap::from([("ship".to_string(), vec![3]), ("sea".to_string(), vec![2])]),
        };
        let genre = facts.word_pulls(&[("ship".to_string(), 2.0), ("rocket".to_string(), 3.0)], 1.5);
        assert_eq!(genre, vec![Pull { tokens: vec![3], nats: 3.0 }]);
        let pulls = Pulls { genre, limit: 1, keywords: Vec::new(), spacing: 1 };
        let flat = vec![0.25f32.ln(); 4];
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[], usize::MAX, 0.0, &pulls);
        assert!((row[3] - (flat[3] + 3.0)).abs() < 1e-6);
        assert_eq!(row[2], flat[2]);
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[3], usize::MAX, 0.0, &pulls);
        assert_eq!(row[3], flat[3]);
        // Once the story has `limit` of the genre's words, none is pulled; nor right after one.
        let genre = facts.word_pulls(&[("ship".to_string(), 2.0), ("sea".to_string(), 1.0)], 1.0);
        let both = Pulls { genre, limit: 1, keywords: Vec::new(), spacing: 1 };
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[], usize::MAX, 0.0, &both);
        assert!((row[2] - (flat[2] + 1.0)).abs() < 1e-6);
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[3], usize::MAX, 0.0, &both);
        assert_eq!(row, flat);
        let both = Pulls { limit: 5, ..both };
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[], 0, 0.0, &both);
        assert_eq!(row, flat);
        // A word with and without a capital is one word: written either way, neither is pulled again.
        let capitals =
            Pulls { genre: vec![Pull { tokens: vec![3, 1], nats: 1.0 }], limit: 5, keywords: Vec::new(), spacing: 1 };
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[], usize::MAX, 0.0, &capitals);
        assert!((row[1] - (flat[1] + 1.0)).abs() < 1e-6 && (row[3] - (flat[3] + 1.0)).abs() < 1e-6);
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[1], usize::MAX, 0.0, &capitals);
        assert_eq!(row, flat);
        // Keywords are pulled whatever the genre's words did, each until written, but not right after a
        // pulled word; nor is a genre word right after a keyword.
        let genre_after_keyword = Pulls { keywords: vec![Pull { tokens: vec![1], nats: 1.5 }], ..both.clone() };
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[1], 0, 0.0, &genre_after_keyword);
        assert_eq!(row, flat);
        let keywords = Pulls { keywords: vec![Pull { tokens: vec![2], nats: 1.5 }], limit: 1, ..both };
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[3, 0], 1, 0.0, &keywords);
        assert!((row[2] - (flat[2] + 1.5)).abs() < 1e-6);
        // With a spacing of 3, nothing is pulled until 3 tokens follow the last pulled word.
        let spaced = Pulls { spacing: 3, ..keywords.clone() };
        let since = [3u32, 0, 0].iter().fold(usize::MAX, |since, &token| spaced.after(since, token));
        assert_eq!(since, 2);
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[3, 0], since, 0.0, &spaced);
        assert_eq!(row, flat);
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[3, 0], spaced.after(since, 0), 0.0, &spaced);
        assert!((row[2] - (flat[2] + 1.5)).abs() < 1e-6);
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[3], 0, 0.0, &keywords);
        assert_eq!(row, flat);
        let mut row = flat.clone();
        facts.adjust(&mut row, 0, &[2], usize::MAX, 0.0, &keywords);
        assert_eq!(row[2], flat[2]);
    }
}
