//! The model in the form a story is written with ([`DecodingLm`]), built from its file: on the CPU each
//! block is packed to bfloat16 as soon as it is read (and changed, a LoRA update merged into it), so the
//! whole model is never held in f32 (`generate`'s peak memory fell from 845 to 571 MB with it); on other
//! devices burn's module.

use std::path::Path;

use burn::tensor::Device;

use super::pretrained::{module_of, read_weights};
use super::{LanguageModelError, OpenedLm, PretrainedLm};
use crate::gguf::GgufFile;
use crate::model::llama::{FileBlock, LlamaConfig};
use crate::model::packed::{DecodingLm, PackedBlock, PackedLm};

/// The model in `file` in the form it writes with on `device`, each block first changed by `adjust`.
pub fn read_decoding(
    file: &GgufFile,
    config: &LlamaConfig,
    device: &Device,
    adjust: impl FnMut(usize, &mut FileBlock),
) -> Result<DecodingLm, LanguageModelError> {
    Ok(if DecodingLm::packs_on(device) {
        DecodingLm::Packed(read_packed(file, config, device, adjust)?)
    } else {
        DecodingLm::Module(module_of(file, config, device, adjust)?)
    })
}

/// The bare pretrained model at `path`, ready to write on `device`.
pub fn load_decoding(path: &Path, device: &Device) -> Result<PretrainedLm<DecodingLm>, LanguageModelError> {
    let opened = OpenedLm::open(path)?;
    let model = read_decoding(&opened.file, &opened.config, device, |_, _| {})?;
    Ok(opened.with_model(model))
}

/// The model in `file` packed block by block as it is read, each block first changed by `adjust`.
pub fn read_packed(
    file: &GgufFile,
    config: &LlamaConfig,
    device: &Device,
    mut adjust: impl FnMut(usize, &mut FileBlock),
) -> Result<PackedLm, LanguageModelError> {
    let weights = read_weights(file, config, |index, mut block| {
        adjust(index, &mut block);
        PackedBlock::of_file(block, config, device)
    })?;
    Ok(PackedLm::of_parts(&weights.embedding, weights.blocks, weights.norm, config, device))
}
