//! Writes a synthetic GoogleNews-style word2vec binary for the expand-vocab benchmark:
//! `make_word2vec ROWS DIM OUT [TOKENIZER]`. The first rows are the words of TOKENIZER (an encoder's
//! `tokenizer.json`), so the fit has shared words; the rest are `w<i>`. Values are seeded random numbers.

use std::io::{BufWriter, Write};

use rand::{Rng, SeedableRng};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 4, "usage: make_word2vec ROWS DIM OUT [TOKENIZER]");
    let rows: usize = args[1].parse()?;
    let dim: usize = args[2].parse()?;
    let shared: Vec<String> = match args.get(4) {
        Some(path) => storytool::text::Vocabulary::load(std::path::Path::new(path))?.words()[2..].to_vec(),
        None => Vec::new(),
    };
    let mut out = BufWriter::with_capacity(1 << 22, std::fs::File::create(&args[3])?);
    write!(out, "{rows} {dim}\n")?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut values = vec![0u8; dim * 4];
    for row in 0..rows {
        match shared.get(row) {
            Some(word) => out.write_all(word.as_bytes())?,
            None => write!(out, "w{row}")?,
        }
        out.write_all(b" ")?;
        for chunk in values.chunks_exact_mut(4) {
            chunk.copy_from_slice(&rng.random_range(-1.0f32..1.0).to_le_bytes());
        }
        out.write_all(&values)?;
    }
    out.flush()?;
    Ok(())
}
