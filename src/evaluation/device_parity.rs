//! Does a device compute what the CPU computes? Each model, with the same weights and the same batch on
//! both, run forward and through one training step (loss and every gradient), compared.
//!
//! The CPU runs storytool's own kernels (the fused GRU recurrence and the output-layer loss); other
//! backends run the same models through burn's tensor operations. This is where the two meet: a GPU build
//! is trusted once `storytool check-device --device cuda` passes.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Serialize;

use crate::model::batch::PaddedBatch;
use crate::model::captioner::CaptionerModelConfig;
use crate::model::llama::{KvCache, LanguageModel, LlamaConfig};
use crate::model::lm_steering::{LmSteering, LmSteeringConfig};
use crate::model::skip_thought::{DecoderTargets, SkipThoughtConfig, TripleTensors};
use crate::model::story_decoder::{ConditionInputs, StoryDecoderConfig};
use crate::model::vse::{CaptionTensors, VseModelConfig};
use crate::train::lm_decoder::{LmBatch, passage_nll};
use crate::vision::efficientnet::{EfficientNet, EfficientNetSpec};

/// Largest relative difference (in L2 norm, against the CPU's values) a check passes with.
pub const TOLERANCE: f64 = 1e-3;

/// One comparison of the device against the CPU.
#[derive(Debug, Clone, Serialize)]
pub struct ParityCheck {
    pub model: &'static str,
    /// `forward` (outputs of the inference model) or `train step` (the loss and every gradient).
    pub check: &'static str,
    /// Values compared.
    pub values: usize,
    /// `‖device - cpu‖ / ‖cpu‖`.
    pub relative: f64,
    /// Largest difference of one value.
    pub max_abs: f64,
    pub passed: bool,
}

impl ParityCheck {
    fn of(model: &'static str, check: &'static str, cpu: &[f32], device: &[f32]) -> ParityCheck {
        assert_eq!(cpu.len(), device.len(), "{model} {check}: the two devices gave different shapes");
        let (mut difference, mut norm, mut max_abs) = (0.0f64, 0.0f64, 0.0f64);
        let mut finite = true;
        for (&a, &b) in cpu.iter().zip(device) {
            finite &= a.is_finite() && b.is_finite();
            let delta = f64::from(a) - f64::from(b);
            difference += delta * delta;
            norm += f64::from(a) * f64::from(a);
            max_abs = max_abs.max(delta.abs());
        }
        let relative = difference.sqrt() / norm.sqrt().max(f64::MIN_POSITIVE);
        let relative = if finite { relative } else { f64::INFINITY };
        ParityCheck { model, check, values: cpu.len(), relative, max_abs, passed: relative <= TOLERANCE }
    }
}

/// Every model's forward pass and training step on `device` against the CPU (burn's `flex` backend).
pub fn check_parity(device: &Device) -> Vec<ParityCheck> {
    let cpu = Device::flex();
    let mut checks = Vec::new();
    checks.extend(skip_thought(&cpu, device));
    checks.extend(story_decoder(&cpu, device));
    checks.extend(vse(&cpu, device));
    checks.extend(captioner(&cpu, device));
    checks.extend(lm_decoder(&cpu, device));
    checks.push(efficientnet(&cpu, device));
    checks
}

const VOCAB: usize = 300;
const SEED: u64 = 7;

/// Sentences of different lengths (so that padding is exercised), ids below [`VOCAB`].
fn sentences(rows: usize, salt: u64) -> Vec<Vec<u32>> {
    (0..rows as u64)
        .map(|row| {
            (0..3 + (row * 5 + salt) % 9)
                .map(|i| (2 + (row * 31 + i * 17 + salt * 7) % (VOCAB as u64 - 2)) as u32)
                .collect()
        })
        .collect()
}

fn padded(rows: usize, salt: u64) -> PaddedBatch {
    let sentences = sentences(rows, salt);
    PaddedBatch::new(sentences.iter().map(Vec::as_slice), 16)
}

/// Deterministic values in [-1, 1), the same on every device.
fn values(shape: &[usize], salt: u64) -> TensorData {
    let count: usize = shape.iter().product();
    let values: Vec<f32> =
        (0..count as u64).map(|i| ((i * 7919 + salt * 104_729) % 2001) as f32 / 1000.0 - 1.0).collect();
    TensorData::new(values, shape.to_vec())
}

fn floats<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 values")
}

/// The model made on the CPU with autodiff (seeded), and its copy on `device` with autodiff.
fn pair<M: Module>(cpu: &Device, device: &Device, init: impl Fn(&Device) -> M) -> (M, M) {
    let cpu = cpu.clone().autodiff();
    cpu.seed(SEED);
    let model = init(&cpu);
    crate::train::trainer::initialise_now(&model);
    let copy = model.clone().fork(&device.clone().autodiff());
    (model, copy)
}

/// The loss and every parameter's gradient, flattened in the module's order.
fn loss_and_gradients<M: Module>(model: &M, loss: Tensor<1>) -> Vec<f32> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        values: Vec<f32>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                self.values.extend(floats(grad));
            }
        }
    }
    let mut values = floats(loss.clone());
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let mut collect = Collect { grads: &grads, values: Vec::new() };
    model.visit(&mut collect);
    values.extend(collect.values);
    values
}

fn skip_thought(cpu: &Device, device: &Device) -> [ParityCheck; 2] {
    let hidden = 48;
    let (on_cpu, on_device) = pair(cpu, device, |d| SkipThoughtConfig::new(VOCAB, 32, hidden).init(d));
    let batch = |d: &Device| TripleTensors::new(&padded(6, 1), &padded(6, 2), &padded(6, 3), hidden, d);
    let forward = |model: &crate::model::skip_thought::SkipThought, d: &Device| {
        let batch = batch(d);
        floats(model.valid().encode(batch.current, batch.current_last))
    };
    let step = |model: &crate::model::skip_thought::SkipThought, d: &Device| {
        loss_and_gradients(model, model.loss(&batch(&d.clone().autodiff())))
    };
    [
        ParityCheck::of("skip-thought", "forward", &forward(&on_cpu, cpu), &forward(&on_device, device)),
        ParityCheck::of("skip-thought", "train step", &step(&on_cpu, cpu), &step(&on_device, device)),
    ]
}

fn story_decoder(cpu: &Device, device: &Device) -> [ParityCheck; 2] {
    let context = 24;
    let (on_cpu, on_device) =
        pair(cpu, device, |d| StoryDecoderConfig::new(VOCAB, 32, 48, context).with_per_step_context(true).init(d));
    let targets = padded(5, 4);
    let vectors = |d: &Device| Tensor::<2>::from_data(values(&[5, context], 1), d);
    let forward = |model: &crate::model::story_decoder::StoryDecoder, d: &Device| {
        let model = model.valid();
        let condition = model.condition(vectors(d), &ConditionInputs::default());
        // The teacher-forced loss, and the first step of decoding as `generate` runs it.
        let mut out = floats(model.loss(condition.clone(), &DecoderTargets::new(&targets, d), None));
        out.extend(floats(model.step(None, model.start(condition.clone()), &condition).log_probs));
        out
    };
    let step = |model: &crate::model::story_decoder::StoryDecoder, d: &Device| {
        let d = d.clone().autodiff();
        let condition = model.condition(vectors(&d), &ConditionInputs::default());
        loss_and_gradients(model, model.loss(condition, &DecoderTargets::new(&targets, &d), None))
    };
    [
        ParityCheck::of("story decoder", "forward", &forward(&on_cpu, cpu), &forward(&on_device, device)),
        ParityCheck::of("story decoder", "train step", &step(&on_cpu, cpu), &step(&on_device, device)),
    ]
}

fn vse(cpu: &Device, device: &Device) -> [ParityCheck; 2] {
    let (image_dim, embed) = (40, 32);
    let (on_cpu, on_device) = pair(cpu, device, |d| VseModelConfig::new(VOCAB, 24, embed, image_dim).init(d));
    let captions = padded(6, 5);
    let images = |d: &Device| Tensor::<2>::from_data(values(&[6, image_dim], 2), d);
    let forward = |model: &crate::model::vse::Vse, d: &Device| {
        let model = model.valid();
        let mut out = floats(model.encode_captions(&CaptionTensors::new(&captions, embed, d)));
        out.extend(floats(model.encode_images(images(d))));
        out
    };
    let step = |model: &crate::model::vse::Vse, d: &Device| {
        let d = d.clone().autodiff();
        loss_and_gradients(model, model.loss(images(&d), &CaptionTensors::new(&captions, embed, &d), 0.2, true))
    };
    [
        ParityCheck::of("vse", "forward", &forward(&on_cpu, cpu), &forward(&on_device, device)),
        ParityCheck::of("vse", "train step", &step(&on_cpu, cpu), &step(&on_device, device)),
    ]
}

fn captioner(cpu: &Device, device: &Device) -> [ParityCheck; 2] {
    let (locations, features) = (9, 20);
    let (on_cpu, on_device) =
        pair(cpu, device, |d| CaptionerModelConfig::new(VOCAB, 24, 32, 16, features).with_dropout(0.0).init(d));
    let targets = padded(4, 6);
    let photos = |d: &Device| Tensor::<3>::from_data(values(&[4, locations, features], 3), d);
    let forward = |model: &crate::model::captioner::Captioner, d: &Device| {
        let model = model.valid();
        let (loss, alpha) = model.forward_targets(photos(d), &DecoderTargets::new(&targets, d));
        let mut out = floats(loss.objective(1.0));
        out.extend(floats(alpha));
        out
    };
    let step = |model: &crate::model::captioner::Captioner, d: &Device| {
        let d = d.clone().autodiff();
        let (loss, _) = model.forward_targets(photos(&d), &DecoderTargets::new(&targets, &d));
        loss_and_gradients(model, loss.objective(1.0))
    };
    [
        ParityCheck::of("captioner", "forward", &forward(&on_cpu, cpu), &forward(&on_device, device)),
        ParityCheck::of("captioner", "train step", &step(&on_cpu, cpu), &step(&on_device, device)),
    ]
}

/// A small llama and its steering, as the `lm` story decoder trains them.
#[derive(Module, Debug)]
struct SteeredLm {
    lm: LanguageModel,
    steering: LmSteering,
}

fn lm_decoder(cpu: &Device, device: &Device) -> [ParityCheck; 2] {
    let context = 24;
    let (on_cpu, on_device) = pair(cpu, device, |d| SteeredLm {
        lm: LlamaConfig::new(VOCAB, 64, 2, 4, 2, 96).init(d),
        steering: LmSteeringConfig::new(context, 64, 2, 32)
            .with_prefix_len(3)
            .with_mapper_hidden(32)
            .with_genres(2)
            .with_lora_rank(4)
            .init(d),
    });
    let rows: Vec<(Vec<u32>, usize)> = sentences(3, 8).into_iter().map(|tokens| (tokens, 2)).collect();
    let batch = |d: &Device| LmBatch {
        vectors: Tensor::<2>::from_data(values(&[3, context], 5), d),
        genres: vec![Some(0), None, Some(1)],
        rows: rows.clone(),
    };
    let forward = |model: &SteeredLm, d: &Device| {
        let model = model.valid();
        let (nll, _) = passage_nll(&model.lm, &model.steering, &batch(d));
        // And decoding with the cache, as `generate` runs it.
        let mut cache = KvCache::new();
        let tokens = |ids: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, ids.len()]), d);
        let mut out = floats(nll);
        out.extend(floats(model.lm.forward(tokens(vec![5, 9, 12]), Some(&mut cache))));
        out.extend(floats(model.lm.forward(tokens(vec![7]), Some(&mut cache))));
        out
    };
    let step = |model: &SteeredLm, d: &Device| {
        let (nll, count) = passage_nll(&model.lm, &model.steering, &batch(&d.clone().autodiff()));
        loss_and_gradients(model, nll / count as f32)
    };
    [
        ParityCheck::of("lm decoder", "forward", &forward(&on_cpu, cpu), &forward(&on_device, device)),
        ParityCheck::of("lm decoder", "train step", &step(&on_cpu, cpu), &step(&on_device, device)),
    ]
}

/// The CNN only runs forward (its weights come from PyTorch and are never trained here).
fn efficientnet(cpu: &Device, device: &Device) -> ParityCheck {
    cpu.seed(SEED);
    let model = EfficientNet::new(&EfficientNetSpec::lite0(), cpu);
    crate::train::trainer::initialise_now(&model);
    let copy = model.clone().to_device(device);
    let image = |d: &Device| Tensor::<4>::from_data(values(&[1, 3, 224, 224], 4), d);
    let cpu_out = floats(model.forward(image(cpu)).pooled);
    let device_out = floats(copy.forward(image(device)).pooled);
    ParityCheck::of("efficientnet-lite0", "forward", &cpu_out, &device_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_matches_itself_and_every_model_is_checked() {
        let checks = check_parity(&Device::flex());
        assert_eq!(checks.len(), 11);
        for check in &checks {
            assert!(check.passed && check.relative < 1e-6, "{check:?}");
            assert!(check.values > 0, "{check:?}");
        }
        let step = checks.iter().find(|check| check.model == "skip-thought" && check.check == "train step").unwrap();
        assert!(step.values > 1000, "the gradients are compared, not only the loss: {step:?}");
    }

    #[test]
    fn a_difference_beyond_the_tolerance_fails() {
        let cpu = [1.0f32, 2.0, 3.0];
        assert!(ParityCheck::of("m", "forward", &cpu, &[1.0, 2.0, 3.0001]).passed);
        let off = ParityCheck::of("m", "forward", &cpu, &[1.0, 2.0, 3.1]);
        assert!(!off.passed && (off.max_abs - 0.1).abs() < 1e-6, "{off:?}");
        assert!(!ParityCheck::of("m", "forward", &cpu, &[1.0, f32::NAN, 3.0]).passed);
    }
}
