//! The tokenizer a GGUF file carries, rebuilt as a `tokenizers` tokenizer.
//!
//! llama.cpp stores a byte-level BPE tokenizer as `tokenizer.ggml.model = "gpt2"`: the tokens (each byte
//! written as GPT-2's printable stand-in, a space as `Ġ`), the merges as `"left right"` strings, a type per
//! token (3 marks control tokens such as `<|im_start|>`), and `tokenizer.ggml.pre` naming the
//! pre-tokenizer. The `tokenizers` crate has every part: a BPE model from the vocabulary and merges, the
//! pre-tokenizer (`smollm`: each digit alone, then GPT-2's pattern; `gpt2`/`default`: GPT-2's pattern only),
//! the byte-level decoder, and the control tokens as special tokens, so that text containing
//! `<|im_end|>` is not split into letters. Other tokenizer kinds are refused by name.

use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use super::file::{GgufError, GgufFile, MetadataValue};

/// GGUF's token type of control tokens (llama.cpp's `LLAMA_TOKEN_TYPE_CONTROL`).
const CONTROL_TOKEN: u64 = 3;

/// The file's tokenizer.
pub fn tokenizer_from_gguf(file: &GgufFile) -> Result<Tokenizer, GgufError> {
    let model = file.value_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(
            file.malformed(format!("its tokenizer is `{model}`; storytool reads byte-level BPE tokenizers (`gpt2`)"))
        );
    }
    let pre = match file.metadata.get("tokenizer.ggml.pre") {
        None => "default",
        Some(value) => value.as_str().ok_or_else(|| file.wrong_type("tokenizer.ggml.pre", "a string", value))?,
    };
    let split_digits = match pre {
        "smollm" => true,
        "default" | "gpt2" => false,
        other => {
            return Err(file
                .malformed(format!("its pre-tokenizer is `{other}`; storytool knows `smollm`, `gpt2` and `default`")));
        }
    };
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    let merges = strings(file, "tokenizer.ggml.merges")?;
    let types: Vec<u64> = match file.metadata.get("tokenizer.ggml.token_type") {
        None => vec![1; tokens.len()],
        Some(value) => {
            let items =
                value.as_array().ok_or_else(|| file.wrong_type("tokenizer.ggml.token_type", "an array", value))?;
            items.iter().map(|item| item.as_u64().unwrap_or(0)).collect()
        }
    };
    if types.len() != tokens.len() {
        return Err(file.malformed(format!("{} token types for {} tokens", types.len(), tokens.len())));
    }
    let mut vocabulary = Vocab::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        if vocabulary.insert(token.to_string(), id as u32).is_some() {
            return Err(file.malformed(format!("token {token:?} is listed twice")));
        }
    }
    let mut pairs = Vec::with_capacity(merges.len());
    for merge in &merges {
        let Some((left, right)) = merge.split_once(' ') else {
            return Err(file.malformed(format!("merge {merge:?} is not two tokens separated by a space")));
        };
        pairs.push((left.to_string(), right.to_string()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocabulary, pairs)
        .build()
        .map_err(|error| file.malformed(format!("its BPE tokenizer cannot be built: {error}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
    if split_digits {
        steps.push(Digits::new(true).into());
    }
    steps.push(byte_level.into());
    tokenizer.with_pre_tokenizer(Some(Sequence::new(steps)));
    tokenizer.with_decoder(Some(byte_level));
    let control: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, token_type)| **token_type == CONTROL_TOKEN)
        .map(|(token, _)| AddedToken::from(token.to_string(), true))
        .collect();
    tokenizer.add_special_tokens(&control);
    Ok(tokenizer)
}

fn strings<'a>(file: &'a GgufFile, key: &str) -> Result<Vec<&'a str>, GgufError> {
    file.value_array(key)?
        .iter()
        .map(|item| match item {
            MetadataValue::String(text) => Ok(text.as_str()),
            other => Err(file.wrong_type(key, "an array of strings", other)),
        })
        .collect()
}
