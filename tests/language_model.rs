//! The GGUF import and the llama module against a numpy oracle (`scripts/oracle/llama_gguf.py`, which reads
//! the file by hand and shares no code with storytool), on a tiny random model the project ships
//! (`tests/fixtures/lm/tiny-llama.gguf`, written by `scripts/oracle/tiny_llama_gguf.py`: 2 blocks, width 64,
//! 4 query and 2 key/value heads, its tensors in Q8_0, Q4_1, F16 and F32, a byte-level BPE tokenizer of 281
//! tokens). The real SmolLM2 is checked the same way in `real_data.rs`.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::Value;
use storytool::language_model::PretrainedLm;
use storytool::language_model::decoding::{load_decoding, read_packed};
use storytool::model::llama::KvCache;
use storytool::model::packed::DecodingLm;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm").join(name)
}

fn oracle() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("tiny-llama.oracle.json")).unwrap()).unwrap()
}

fn ids(value: &Value) -> Vec<u32> {
    value.as_array().unwrap().iter().map(|id| id.as_u64().unwrap() as u32).collect()
}

fn floats(value: &Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn logits(lm: &PretrainedLm, tokens: &[u32]) -> Vec<f32> {
    let device = Device::flex();
    let ids: Vec<i64> = tokens.iter().map(|&id| i64::from(id)).collect();
    let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, tokens.len()]), &device);
    lm.model.forward(input, None).into_data().try_to_vec::<f32>().unwrap()
}

/// `||a - b|| / ||b||`.
fn relative_error(a: &[f32], b: &[f64]) -> f64 {
    let difference: f64 = a.iter().zip(b).map(|(&a, &b)| (f64::from(a) - b).powi(2)).sum();
    let norm: f64 = b.iter().map(|b| b * b).sum();
    (difference / norm).sqrt()
}

/// Negative log-likelihood of each next token under `logits` (`[positions, vocab]`).
fn next_token_nll(logits: &[f32], tokens: &[u32], vocab: usize) -> Vec<f64> {
    (0..tokens.len() - 1)
        .map(|position| {
            let row = &logits[position * vocab..(position + 1) * vocab];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
            max + sum.ln() - row[tokens[position + 1] as usize] as f64
        })
        .collect()
}

#[test]
fn tiny_model_logits_and_perplexity_match_the_numpy_oracle() {
    let oracle = oracle();
    let lm = PretrainedLm::load(&fixture("tiny-llama.gguf"), &Device::flex()).unwrap();
    let vocab = oracle["vocab_size"].as_u64().unwrap() as usize;
    assert_eq!(lm.config.vocab_size, vocab);
    assert_eq!((lm.config.blocks, lm.config.heads, lm.config.kv_heads), (2, 4, 2));
    let tokens = ids(&oracle["tokens"]);
    let ours = logits(&lm, &tokens);
    let want: Vec<Vec<f64>> = oracle["logits"].as_array().unwrap().iter().map(floats).collect();
    for (position, row) in want.iter().enumerate() {
        let error = relative_error(&ours[position * vocab..(position + 1) * vocab], row);
        assert!(error < 1e-3, "position {position}: logits differ from the oracle by {error:.2e} (relative)");
    }
    let nll = next_token_nll(&ours, &tokens, vocab);
    let perplexity = (nll.iter().sum::<f64>() / nll.len() as f64).exp();
    let want = oracle["perplexity"].as_f64().unwrap();
    assert!((perplexity / want - 1.0).abs() < 1e-3, "perplexity {perplexity} vs the oracle's {want}");
}

#[test]
fn tiny_model_packed_for_writing_stays_within_a_percent_of_the_numpy_oracle() {
    let oracle = oracle();
    let device = Device::flex();
    // Packed as `generate` reads it: block by block from the file.
    let lm = load_decoding(&fixture("tiny-llama.gguf"), &device).unwrap();
    let vocab = lm.config.vocab_size;
    let packed = lm.model;
    assert!(matches!(packed, DecodingLm::Packed(_)));
    let tokens = ids(&oracle["tokens"]);
    let input: Vec<i64> = tokens.iter().map(|&id| i64::from(id)).collect();
    let input = Tensor::<2, Int>::from_data(TensorData::new(input, [1, tokens.len()]), &device);
    let ours = packed.forward(input, None).into_data().try_to_vec::<f32>().unwrap();
    let want: Vec<f64> = oracle["logits"].as_array().unwrap().iter().flat_map(floats).collect();
    // bfloat16 keeps 8 significant bits (2^-9 relative per weight); on this random model the logits move
    // by about 1%, and the perplexity, what decoding depends on, by less.
    let error = relative_error(&ours, &want);
    assert!(error < 2e-2, "packed logits differ from the oracle by {error:.2e} (relative)");
    let nll = next_token_nll(&ours, &tokens, vocab);
    let perplexity = (nll.iter().sum::<f64>() / nll.len() as f64).exp();
    let want = oracle["perplexity"].as_f64().unwrap();
    assert!((perplexity / want - 1.0).abs() < 1e-2, "packed perplexity {perplexity} vs the oracle's {want}");
}

#[test]
fn a_lora_update_merged_while_reading_computes_what_the_adapted_model_computes() {
    use burn::module::Param;
    use storytool::language_model::OpenedLm;
    use storytool::language_model::pretrained::module_of;
    use storytool::model::lm_steering::LmSteeringConfig;

    let device = Device::flex();
    let path = fixture("tiny-llama.gguf");
    let lm = PretrainedLm::load(&path, &device).unwrap();
    let config = &lm.config;
    let kv_width = config.kv_heads * config.head_dim();
    let mut steering = LmSteeringConfig::new(8, config.width, config.blocks, kv_width).with_lora_rank(2).init(&device);
    // The update starts at zero; a random one, so that merging it shows.
    for (index, lora) in steering.lora.iter_mut().enumerate() {
        for (offset, pair) in [&mut lora.query, &mut lora.value].into_iter().enumerate() {
            let [rank, output] = pair.up.weight.dims();
            let values: Vec<f32> =
                (0..rank * output).map(|i| (((i * 7 + index * 13 + offset * 5) % 11) as f32 - 5.0) / 20.0).collect();
            pair.up.weight = Param::from_tensor(Tensor::from_data(TensorData::new(values, [rank, output]), &device));
        }
    }
    let tokens: Vec<i64> = ids(&oracle()["tokens"]).into_iter().map(i64::from).collect();
    let input = || Tensor::<2, Int>::from_data(TensorData::new(tokens.clone(), [1, tokens.len()]), &device);
    let values = |logits: Tensor<3>| logits.into_data().try_to_vec::<f32>().unwrap();
    let adapted = lm.model.forward_adapted(lm.model.embed(input()), None, Some((&steering.lora, steering.lora_scale)));
    let want: Vec<f64> = values(lm.model.logits(adapted)).into_iter().map(f64::from).collect();
    let unchanged: Vec<f32> = values(lm.model.forward(input(), None));
    assert!(relative_error(&unchanged, &want) > 1e-2, "the update changes too little to test");

    let opened = OpenedLm::open(&path).unwrap();
    let merged =
        module_of(&opened.file, &opened.config, &device, |index, block| steering.merge_lora(index, block)).unwrap();
    let error = relative_error(&values(merged.forward(input(), None)), &want);
    assert!(error < 1e-5, "merged module: {error:.2e}");
    let packed =
        read_packed(&opened.file, &opened.config, &device, |index, block| steering.merge_lora(index, block)).unwrap();
    let hidden = packed.forward_embeddings(packed.embed(input()), None);
    let error = relative_error(&values(packed.logits(hidden)), &want);
    assert!(error < 2e-2, "merged and packed: {error:.2e}");
}

#[test]
fn tiny_model_decodes_a_token_at_a_time_as_it_reads_the_whole_sequence() {
    let oracle = oracle();
    let lm = PretrainedLm::load(&fixture("tiny-llama.gguf"), &Device::flex()).unwrap();
    let tokens = ids(&oracle["tokens"]);
    let whole = logits(&lm, &tokens);
    let device = Device::flex();
    let mut cache = KvCache::new();
    let mut stepped = Vec::new();
    for &token in &tokens {
        let input = Tensor::<2, Int>::from_data(TensorData::new(vec![i64::from(token)], [1, 1]), &device);
        stepped.extend(lm.model.forward(input, Some(&mut cache)).into_data().try_to_vec::<f32>().unwrap());
    }
    let whole: Vec<f64> = whole.iter().map(|&x| f64::from(x)).collect();
    let error = relative_error(&stepped, &whole);
    assert!(error < 1e-5, "cached decoding differs by {error:.2e}");
}

#[test]
fn tiny_tokenizer_splits_as_the_python_tokenizers_package_does() {
    let oracle = oracle();
    let lm = PretrainedLm::load(&fixture("tiny-llama.gguf"), &Device::flex()).unwrap();
    let mut cases = vec![(oracle["text"].as_str().unwrap().to_string(), ids(&oracle["text_tokens"]))];
    for extra in oracle["extra_texts"].as_array().unwrap() {
        cases.push((extra["text"].as_str().unwrap().to_string(), ids(&extra["tokens"])));
    }
    for (text, want) in cases {
        let encoding = lm.tokenizer.encode(text.as_str(), false).unwrap();
        assert_eq!(encoding.get_ids(), want.as_slice(), "{text:?}");
        let back = lm.tokenizer.decode(&want, false).unwrap();
        assert_eq!(back, text);
    }
    assert_eq!(lm.control_tokens, vec![0, 1, 2]);
}

#[test]
fn broken_model_files_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tiny-llama.gguf")).unwrap();
    let load = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let error = PretrainedLm::load(&path, &Device::flex()).unwrap_err();
        let text = storytool::util::error_chain(&error);
        assert!(text.contains(name), "{text}");
        text
    };
    // Cut in the tensor data, in the tensor table and in the metadata.
    for cut in [bytes.len() - 100, bytes.len() / 2, 4000, 300, 10] {
        let error = load("cut.gguf", &bytes[..cut]);
        assert!(error.contains("truncated"), "cut at {cut}: {error}");
    }
    let error = load("zip.gguf", b"PK\x03\x04not a model at all");
    assert!(error.contains("is not a GGUF file"), "{error}");
    // An unknown tensor type: the first tensor's type number rewritten to Q4_K (12).
    let name = b"token_embd.weight";
    let at = bytes.windows(name.len()).position(|window| window == name).unwrap();
    let type_at = at + name.len() + 4 + 2 * 8;
    let mut unknown = bytes.clone();
    unknown[type_at..type_at + 4].copy_from_slice(&12u32.to_le_bytes());
    let error = load("q4k.gguf", &unknown);
    assert!(error.contains("Q4_K"), "{error}");
    // A wrong shape: the embedding's width field doubled, so it no longer matches the blocks.
    let mut misshapen = bytes.clone();
    let width_at = at + name.len() + 4;
    misshapen[width_at..width_at + 8].copy_from_slice(&32u64.to_le_bytes());
    let error = load("shape.gguf", &misshapen);
    assert!(error.contains("token_embd.weight") && error.contains("expected"), "{error}");
    // A missing tensor: a block's name changed.
    let ffn = b"blk.1.ffn_up.weight";
    let at = bytes.windows(ffn.len()).position(|window| window == ffn).unwrap();
    let mut renamed = bytes.clone();
    renamed[at..at + 3].copy_from_slice(b"xyz");
    let error = load("missing.gguf", &renamed);
    assert!(error.contains("no tensor `blk.1.ffn_up.weight`"), "{error}");
}

#[test]
fn the_prompt_only_writer_finishes_stories_by_beam_and_by_sampling() {
    use storytool::config::{GenerateConfig, Strategy};
    use storytool::story::generate::StoryOptions;
    use storytool::story::lm_writer::LmWriter;
    use storytool::util::cancel::CancelFlag;

    let device = Device::flex();
    let lm = load_decoding(&fixture("tiny-llama.gguf"), &device).unwrap();
    let writer = LmWriter::baseline(lm, &device);
    let words = vec![vec!["cat".to_string(), "mat".into()]];
    for strategy in [Strategy::Beam, Strategy::Sample] {
        let mut options = StoryOptions::new("adventure", &GenerateConfig::default());
        options.strategy = strategy;
        options.min_words = 3;
        options.max_words = 12;
        let written = writer.write(None, &words, &options, &CancelFlag::new(), &mut |_| {}).unwrap();
        eprintln!("{strategy:?}: {:?}", written.story);
        assert!(!written.story.is_empty(), "{strategy:?} wrote nothing");
        assert!(!written.story.contains('<') && !written.story.contains('\n'), "{:?}", written.story);
        assert_eq!(written.keywords, vec!["cat", "mat"]);
    }
}
