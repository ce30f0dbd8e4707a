//! Data-parallel training on one machine (`--device cuda:0,cuda:1`): each device computes the loss of its
//! share of the batch on a replica of the model, and the gradients meet on the first device for one
//! optimizer step.
//!
//! This is burn-train's multi-device step built from burn's own pieces (`Module::fork` for the replicas,
//! `GradientsParams::to_device` and `GradientsAccumulator` to bring the gradients together), because
//! storytool runs its own loop: resumable to the batch, seeded per step, with its own checkpoints.
//!
//! The result is the one-device step's, up to float rounding: each share's summed loss is divided by the
//! whole batch's weight (its target tokens), so the shares' losses and gradients add up to the batch's
//! mean. Only a task whose loss is a sum over rows can split: the VSE's loss compares every caption with
//! every image of its batch, so it trains on one device.

use std::ops::Range;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};

use super::run::TrainingTask;

/// One device's share of a batch, ready to run on a replica of the model.
pub struct Share<'a, M> {
    /// What the share's loss sums over (target tokens): the shares are divided by the batch's total.
    pub weight: f32,
    /// Items covered (tokens, pairs), for throughput.
    pub items: usize,
    /// The share's summed loss on a replica of the model on the share's device.
    pub loss_sum: Box<dyn FnOnce(&M) -> Tensor<1> + Send + 'a>,
}

/// The rows of share `part` of `parts` of a batch of `len` rows: contiguous, sizes differing by at most one,
/// the larger first.
pub fn share_range(len: usize, part: usize, parts: usize) -> Range<usize> {
    let (base, extra) = (len / parts, len % parts);
    let start = part * base + part.min(extra);
    start..start + base + usize::from(part < extra)
}

/// What one data-parallel step gives the loop: the batch's loss, its items and the gradients on the main
/// device.
pub struct StepResult {
    pub loss: f32,
    pub items: usize,
    pub grads: GradientsParams,
}

/// Batch `index`'s loss and gradients, computed in shares on `devices` (autodiff devices, the first
/// holding `model`), one thread per device that has rows (a batch smaller than the device count leaves
/// some without).
pub fn step<T>(task: &T, model: &T::Model, index: usize, step: u64, devices: &[Device]) -> StepResult
where
    T: TrainingTask,
    T::Model: Send,
{
    let parts = devices.len();
    let shares: Vec<(Share<'_, T::Model>, &Device)> = devices
        .iter()
        .enumerate()
        .filter_map(|(part, device)| Some((task.share(index, step, part, parts, device)?, device)))
        .collect();
    let total: f32 = shares.iter().map(|(share, _)| share.weight).sum();
    let items = shares.iter().map(|(share, _)| share.items).sum();
    let main = &devices[0];
    // Replicas are made here, in order, so that each thread owns what it computes on.
    let work: Vec<_> = shares.into_iter().map(|(share, device)| (share, model.clone().fork(device))).collect();
    let results: Vec<(f32, GradientsParams)> = std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .into_iter()
            .map(|(share, replica)| {
                scope.spawn(move || {
                    let loss = (share.loss_sum)(&replica).div_scalar(total.max(f32::MIN_POSITIVE));
                    let value: f32 = loss.clone().into_scalar();
                    let grads = GradientsParams::from_grads(loss.backward(), &replica).to_device(main, &replica);
                    (value, grads)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    let mut accumulator = GradientsAccumulator::new();
    let mut loss = 0.0;
    for (value, grads) in results {
        loss += value;
        accumulator.accumulate(model, grads);
    }
    StepResult { loss, items, grads: accumulator.grads() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_once_in_order() {
        for len in 0..20 {
            for parts in 1..5 {
                let ranges: Vec<Range<usize>> = (0..parts).map(|part| share_range(len, part, parts)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[parts - 1].end, len);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                    assert!(pair[0].len() >= pair[1].len() && pair[0].len() - pair[1].len() <= 1);
                }
            }
        }
    }
}
