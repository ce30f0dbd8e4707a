//! A tensor's bytes into f32 values, for the four GGML types storytool reads.
//!
//! Block layouts (ggml-common.h): Q4_1 blocks 32 values in 20 bytes, an f16 scale `d`, an f16 minimum `m`
//! and 16 bytes of nibbles, where the low nibble of byte j is value j and the high nibble value j + 16,
//! each `q * d + m`; Q8_0 blocks 32 values in 34 bytes, an f16 scale and 32 signed bytes, each `q * d`.
//! Values come out in the file's order: rows of `dims[0]` values.

use half::f16;
use rayon::prelude::*;

use super::file::{GgufError, GgufFile, TensorInfo, TensorType};

/// Blocks dequantised per parallel task (about 64 KB of output each).
const BLOCKS_PER_TASK: usize = 512;

/// The tensor's values as f32, in the file's order (`dims[0]` fastest).
pub fn dequantize(file: &GgufFile, info: &TensorInfo) -> Result<Vec<f32>, GgufError> {
    let bytes = file.tensor_bytes(info)?;
    let mut out = vec![0f32; info.element_count()];
    dequantize_into(info.tensor_type, bytes, &mut out);
    Ok(out)
}

/// Fills `out` from `bytes` of a readable type; `out` holds exactly the values the bytes encode.
pub fn dequantize_into(tensor_type: TensorType, bytes: &[u8], out: &mut [f32]) {
    let Some((per_block, block_bytes)) = tensor_type.block() else {
        unreachable!("GgufFile::tensor_bytes refuses {} before its bytes are read", tensor_type.name())
    };
    assert_eq!(bytes.len() / block_bytes * per_block, out.len(), "{} bytes for {} values", bytes.len(), out.len());
    let task_values = per_block * BLOCKS_PER_TASK;
    out.par_chunks_mut(task_values).zip(bytes.par_chunks(block_bytes * BLOCKS_PER_TASK)).for_each(|(out, bytes)| {
        match tensor_type {
            TensorType::F32 => {
                for (value, raw) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *value = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                }
            }
            TensorType::F16 => {
                for (value, raw) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *value = f16::from_le_bytes([raw[0], raw[1]]).to_f32();
                }
            }
            TensorType::Q4_1 => {
                for (values, block) in out.chunks_exact_mut(32).zip(bytes.chunks_exact(20)) {
                    let scale = f16::from_le_bytes([block[0], block[1]]).to_f32();
                    let minimum = f16::from_le_bytes([block[2], block[3]]).to_f32();
                    let (low, high) = values.split_at_mut(16);
                    for (j, &packed) in block[4..20].iter().enumerate() {
                        low[j] = f32::from(packed & 0x0F) * scale + minimum;
                        high[j] = f32::from(packed >> 4) * scale + minimum;
                    }
                }
            }
            TensorType::Q8_0 => {
                for (values, block) in out.chunks_exact_mut(32).zip(bytes.chunks_exact(34)) {
                    let scale = f16::from_le_bytes([block[0], block[1]]).to_f32();
                    for (value, &quantised) in values.iter_mut().zip(&block[2..34]) {
                        *value = f32::from(quantised as i8) * scale;
                    }
                }
            }
            TensorType::Other(_) => unreachable!(),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn half_bytes(value: f32) -> [u8; 2] {
        f16::from_f32(value).to_le_bytes()
    }

    #[test]
    fn q4_1_low_nibbles_then_high_nibbles() {
        // d = 0.5, m = -1: nibble q gives q / 2 - 1. Byte j holds value j (low) and value j + 16 (high).
        let mut block = Vec::new();
        block.extend(half_bytes(0.5));
        block.extend(half_bytes(-1.0));
        for j in 0..16u8 {
            block.push((15 - j) << 4 | j);
        }
        let mut out = vec![0.0; 32];
        dequantize_into(TensorType::Q4_1, &block, &mut out);
        for j in 0..16 {
            assert_eq!(out[j], j as f32 * 0.5 - 1.0);
            assert_eq!(out[j + 16], (15 - j) as f32 * 0.5 - 1.0);
        }
    }

    #[test]
    fn q8_0_signed_bytes_times_scale() {
        let mut block = half_bytes(0.25).to_vec();
        block.extend((0..32).map(|j| (j as i8 - 16) as u8));
        let mut out = vec![0.0; 32];
        dequantize_into(TensorType::Q8_0, &block, &mut out);
        for (j, value) in out.iter().enumerate() {
            assert_eq!(*value, (j as f32 - 16.0) * 0.25);
        }
    }

    #[test]
    fn plain_types_and_many_blocks() {
        let values: Vec<f32> = (0..40_000).map(|i| (i as f32 * 0.37).sin()).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = vec![0.0; values.len()];
        dequantize_into(TensorType::F32, &bytes, &mut out);
        assert_eq!(out, values);
        let bytes: Vec<u8> = values.iter().flat_map(|&v| half_bytes(v)).collect();
        dequantize_into(TensorType::F16, &bytes, &mut out);
        for (got, want) in out.iter().zip(&values) {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
    }
}
