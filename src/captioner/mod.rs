//! Show, Attend and Tell: captions written word by word from a photo's spatial CNN features, instead of
//! retrieved from a bank. The model is in [`crate::model::captioner`], its training in
//! [`crate::train::captioner`]; this module holds what uses a trained one.
//!
//! - [`data`]: features folders with spatial maps, captions as ids, the train / valid / test split.
//! - [`trained`]: a trained captioner folder (weights, vocabulary, manifest).
//! - [`decode`]: beam search, batched greedy decoding, the attention behind a caption.
//! - [`photo`]: from a photo file to captions (CNN + captioner).
//! - [`attention_map`]: the attention of each word drawn over the photo, as a PNG.
//! - [`bleu`]: corpus BLEU-1..4.
//! - [`cider`]: corpus CIDEr-D, as the COCO evaluation code computes it.
//! - [`evaluate`]: BLEU of the captioner and of the VSE retrieval baseline on the same test photos.

pub mod attention_map;
pub mod bleu;
pub mod cider;
pub mod data;
pub mod decode;
pub mod evaluate;
pub mod photo;
pub mod trained;
