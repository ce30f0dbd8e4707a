//! GGUF, the model file format of llama.cpp: the pretrained language model behind the `lm` story decoder
//! comes as one (SmolLM2-135M-Instruct from PyPI, `scripts/fetch-lm.sh`).
//!
//! `file` parses the header, the metadata and the tensor table of a memory-mapped file, checking every
//! count and offset against the file's size before anything is allocated; `dequantize` turns the tensor
//! types storytool reads (F32, F16, Q4_1, Q8_0) into f32 and refuses every other type by name; `tokenizer`
//! rebuilds the file's byte-level BPE tokenizer as a `tokenizers` one. What the tensors mean is the
//! language model's business (`language_model`), not this module's.

pub mod dequantize;
pub mod file;
pub mod tokenizer;

pub use file::{GgufError, GgufFile, MetadataValue, TensorInfo, TensorType};
