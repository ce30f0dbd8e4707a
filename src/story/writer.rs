//! The one seam between the generator and its story decoder: a decoder folder of either kind behind the
//! same calls. The generator makes the style-shifted vector and gathers the captions' content words; the
//! writer turns them into prose with its own model (`gru_writer`: the paper's GRU over a word vocabulary;
//! `lm_writer`: a pretrained language model steered by the vector). Both search with the shared strategies
//! of `model::beam` and `model::sampling`.

use std::path::Path;

use burn::tensor::Device;

use super::decoder::{ContextCentre, DecoderError, HeldOutBooks};
use super::generate::{StoryOptions, UsedCaption};
use super::gru_writer::GruWriter;
use super::lm_decoder::read_lm_manifest;
use super::lm_writer::LmWriter;
use crate::util::cancel::{CancelFlag, Interrupted};

/// What a story shows while it is being made, in this order: the captions it comes from (the
/// generator's), the keywords its writer chose, then its text so far, each time that changes. Sampling only
/// adds to the text; a beam search shows its best hypothesis, which may change course; either way the
/// finished story may end before the last text shown (cut after its last full sentence).
#[derive(Debug, Clone, Copy)]
pub enum StoryEvent<'a> {
    Captions(&'a [UsedCaption]),
    Keywords(&'a [String]),
    Text(&'a str),
}

/// Where a story's events go (`|_| {}` when nobody watches).
pub type Watch<'a> = dyn FnMut(StoryEvent<'_>) + 'a;

/// A story as a writer returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub story: String,
    /// The beam width that produced it (1 when sampled).
    pub beam: usize,
    /// The words the decoder was given to write about.
    pub keywords: Vec<String>,
}

#[derive(Debug)]
pub enum StoryWriter {
    Gru(GruWriter),
    Lm(Box<LmWriter>),
}

impl StoryWriter {
    /// The decoder in `dir`, of whichever kind its manifest says; a language-model decoder needs its base
    /// model (`lm`).
    pub fn load(dir: &Path, lm: Option<&Path>, device: &Device) -> Result<StoryWriter, DecoderError> {
        if read_lm_manifest(dir)?.is_none() {
            return Ok(StoryWriter::Gru(GruWriter::load(dir, device)?));
        }
        let Some(lm) = lm else {
            return Err(DecoderError::Invalid {
                path: dir.to_path_buf(),
                source: "it steers a pretrained language model, and none was given (run `scripts/fetch-lm.sh`)".into(),
            });
        };
        Ok(StoryWriter::Lm(Box::new(LmWriter::load(dir, lm, device)?)))
    }

    /// The hash of the encoder vocabulary whose vectors the decoder reads.
    pub fn vocabulary_hash(&self) -> &str {
        match self {
            StoryWriter::Gru(gru) => &gru.manifest.vocabulary_hash,
            StoryWriter::Lm(lm) => lm.vocabulary_hash(),
        }
    }

    pub fn context_dim(&self) -> usize {
        match self {
            StoryWriter::Gru(gru) => gru.context_dim(),
            StoryWriter::Lm(lm) => lm.context_dim(),
        }
    }

    /// The books the decoder's training held out, as its manifest records them.
    pub fn held_out(&self) -> Option<&HeldOutBooks> {
        match self {
            StoryWriter::Gru(gru) => gru.manifest.held_out.as_ref(),
            StoryWriter::Lm(lm) => lm.trained.as_ref().and_then(|(_, manifest)| manifest.held_out.as_ref()),
        }
    }

    /// How the decoder's input vectors are centred and scaled, if it was trained so.
    pub fn context_centre(&self) -> Option<&ContextCentre> {
        match self {
            StoryWriter::Gru(gru) => gru.context_centre(),
            StoryWriter::Lm(lm) => lm.context_centre(),
        }
    }

    /// A story from the decoder's input vector (style-shifted and centred) and the captions' content words,
    /// shown to `watch` as it is written.
    pub fn write(
        &self,
        vector: Vec<f32>,
        caption_words: &[Vec<String>],
        options: &StoryOptions,
        cancel: &CancelFlag,
        watch: &mut Watch<'_>,
    ) -> Result<Written, Interrupted> {
        match self {
            StoryWriter::Gru(gru) => gru.write(vector, caption_words, options, cancel, watch),
            StoryWriter::Lm(lm) => lm.write(Some(vector), caption_words, options, cancel, watch),
        }
    }
}
