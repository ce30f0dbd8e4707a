//! Batches of similar-length examples (padding them is [`crate::model::batch`]).
//!
//! Recurrent training wastes most of its work on padding when short and long sentences share a batch, so
//! each epoch sorts examples by length into buckets, shuffles inside the buckets, cuts batches and shuffles
//! the batch order. The plan is a pure function of `(lengths, batch size, seed, epoch)`: a resumed run
//! recomputes it and continues at the saved batch index, exactly where it stopped.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// How many batches of similar length are shuffled together: larger mixes lengths more.
const BATCHES_PER_BUCKET: usize = 20;

/// The batches of one epoch, as lists of example indices.
///
/// `lengths[i]` is the length that example `i` is bucketed by (the encoder's input sentence).
pub fn plan_epoch(lengths: &[usize], batch_size: usize, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    assert!(batch_size > 0, "batch size must be positive");
    // ChaCha8 is portable: the same seed gives the same plan on every machine and version.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    order.sort_by_key(|&index| lengths[index]); // stable: equal lengths keep their shuffled order
    let mut batches: Vec<Vec<usize>> = Vec::with_capacity(lengths.len().div_ceil(batch_size));
    for bucket in order.chunks_mut(batch_size * BATCHES_PER_BUCKET) {
        bucket.shuffle(&mut rng);
        batches.extend(bucket.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths() -> Vec<usize> {
        (0..1000).map(|index| 1 + (index * 7919) % 40).collect()
    }

    #[test]
    fn every_example_once_and_batches_of_similar_length() {
        let lengths = lengths();
        let plan = plan_epoch(&lengths, 16, 7, 0);
        let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        assert!(plan.iter().all(|batch| !batch.is_empty() && batch.len() <= 16));
        // 1000 examples over 40 lengths: a bucket of 320 spans about 13 lengths, a batch fewer.
        let spread: usize = plan
            .iter()
            .map(|batch| {
                batch.iter().map(|&i| lengths[i]).max().unwrap() - batch.iter().map(|&i| lengths[i]).min().unwrap()
            })
            .max()
            .unwrap();
        assert!(spread <= 14, "a batch spans {spread} lengths");
    }

    #[test]
    fn plans_are_reproducible_and_change_each_epoch() {
        let lengths = lengths();
        assert_eq!(plan_epoch(&lengths, 16, 7, 3), plan_epoch(&lengths, 16, 7, 3));
        assert_ne!(plan_epoch(&lengths, 16, 7, 3), plan_epoch(&lengths, 16, 7, 4));
        assert_ne!(plan_epoch(&lengths, 16, 7, 3), plan_epoch(&lengths, 16, 8, 3));
    }
}
