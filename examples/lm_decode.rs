//! Decoding speed of the pretrained language model at batch 1 with its key/value cache: reads a prompt,
//! then writes `N` tokens greedily, and prints the continuation and the tokens per second of each phase.
//! `scripts/bench/lm_decode.py` runs it beside llama.cpp (llama-cpp-python) on the same GGUF.
//!
//!     cargo run --release --example lm_decode -- MODEL.gguf [TOKENS] [PROMPT]
//!
//! It writes with the model as `generate` does (packed bfloat16 matrices on the CPU); with
//! `STORYTOOL_PACKED_LM=0`, with burn's f32 module.

use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use storytool::language_model::decoding::load_decoding;
use storytool::model::llama::KvCache;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or_else(|| anyhow::anyhow!("usage: lm_decode MODEL.gguf [TOKENS] [PROMPT]"))?;
    let count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(64);
    let prompt = args.next().unwrap_or_else(|| "The old lighthouse keeper climbed the stairs".to_string());
    let device = Device::flex();
    let started = Instant::now();
    // Packed bfloat16 matrices, as `generate` writes with; `STORYTOOL_PACKED_LM=0` keeps burn's f32 module.
    let lm = load_decoding(std::path::Path::new(&path), &device)?;
    let load_seconds = started.elapsed().as_secs_f64();
    let prompt_ids: Vec<i64> = lm
        .tokenizer
        .encode(prompt.as_str(), false)
        .map_err(anyhow::Error::msg)?
        .get_ids()
        .iter()
        .map(|&id| id.into())
        .collect();
    let mut cache = KvCache::new();
    let started = Instant::now();
    let input = Tensor::<2, Int>::from_data(TensorData::new(prompt_ids.clone(), [1, prompt_ids.len()]), &device);
    let hidden = lm.model.forward_embeddings(lm.model.embed(input), Some(&mut cache));
    let last = hidden.narrow(1, prompt_ids.len() - 1, 1);
    let mut logits: Vec<f32> = lm.model.logits(last).into_data().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let prompt_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut written = Vec::new();
    for _ in 0..count {
        let best = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap_or(0);
        written.push(best as u32);
        let input = Tensor::<2, Int>::from_data(TensorData::new(vec![best as i64], [1, 1]), &device);
        logits =
            lm.model.forward(input, Some(&mut cache)).into_data().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let decode_seconds = started.elapsed().as_secs_f64();
    println!("{prompt}{}", lm.tokenizer.decode(&written, false).map_err(anyhow::Error::msg)?);
    println!(
        "load {load_seconds:.2} s; prompt {} tokens in {prompt_seconds:.3} s ({:.1} tokens/s); decode {count} tokens in {decode_seconds:.2} s ({:.1} tokens/s)",
        prompt_ids.len(),
        prompt_ids.len() as f64 / prompt_seconds,
        count as f64 / decode_seconds
    );
    Ok(())
}
