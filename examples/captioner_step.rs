//! Times one training step of the captioner at the demo sizes on random inputs (forward, backward,
//! optimizer), for profiling: `cargo run --release --example captioner_step`.
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use storytool::model::batch::PaddedBatch;
use storytool::model::captioner::CaptionerModelConfig;
use storytool::model::skip_thought::DecoderTargets;

fn main() {
    let device = Device::flex().autodiff();
    let mut model = CaptionerModelConfig::new(1186, 256, 512, 256, 1280).init(&device);
    let captions: Vec<Vec<u32>> =
        (0..32).map(|i| (0..13).map(|t| 2 + ((i * 7 + t * 3) % 1000) as u32).collect()).collect();
    let batch = PaddedBatch::new(captions.iter().map(Vec::as_slice), 20);
    let targets = DecoderTargets::new(&batch, &device);
    let vectors = Tensor::<3>::random([32, 49, 1280], Distribution::Uniform(0.0, 6.0), &device);
    let mut optimizer = AdamConfig::new().init();
    for round in 0..6 {
        let start = Instant::now();
        let (loss, _) = model.forward_targets(vectors.clone(), &targets);
        let loss = loss.objective(0.1);
        let value: f32 = loss.clone().into_scalar();
        let forward = start.elapsed();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let backward = start.elapsed();
        model = optimizer.step(1e-3, model, grads);
        let _ = model.embedding.weight.val().into_data();
        println!(
            "round {round}: loss {value:.3} forward {:?} +backward {:?} +step {:?}",
            forward,
            backward - forward,
            start.elapsed() - backward
        );
    }
    let _ = model.valid();
}
