//! The adaptive softmax (Grave et al. 2017, "Efficient softmax approximation for GPUs", arXiv:1609.04309):
//! an exact softmax over the whole vocabulary, factored so that most tokens cost a fraction of a full one.
//!
//! Words are ranked by frequency (the corpus vocabulary's ids are). A head scores the most frequent words
//! plus one class per tail cluster; a word in a tail cluster gets `p(cluster) · p(word | cluster)`, the second
//! factor from a softmax over that cluster only, computed from the state projected to a smaller size (a
//! quarter of the state for the first tail, a sixteenth for the second, ...). In English text the 2,000 most
//! frequent words cover about 85% of tokens, so most rows pay only for the head, and the rare rows that reach
//! a tail pay for a small product. Unlike a sampled softmax its probabilities are normalised over every word,
//! so training and validation compute the same loss.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::output_loss::{RowTargets, weighted_nll_optional_bias};

/// One tail cluster: a projection to a smaller size, then the cluster's own output layer.
#[derive(Module, Debug)]
pub struct AdaptiveTail {
    projection: Linear,
    output: Linear,
}

/// Why a list of cutoffs cannot shape an adaptive softmax for a vocabulary.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("adaptive softmax cutoffs {cutoffs:?} do not fit a vocabulary of {vocab_size} words: {reason}")]
pub struct CutoffError {
    pub cutoffs: Vec<usize>,
    pub vocab_size: usize,
    pub reason: &'static str,
}

/// Checks that `cutoffs` split `0..vocab_size` into a head and at least one non-empty tail.
pub fn check_cutoffs(cutoffs: &[usize], vocab_size: usize) -> Result<(), CutoffError> {
    let error = |reason| CutoffError { cutoffs: cutoffs.to_vec(), vocab_size, reason };
    if cutoffs.is_empty() {
        return Err(error("there must be at least one cutoff"));
    }
    if cutoffs[0] == 0 {
        return Err(error("the head needs at least one word (the first cutoff must be above 0)"));
    }
    if cutoffs.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(error("cutoffs must increase"));
    }
    if cutoffs[cutoffs.len() - 1] >= vocab_size {
        return Err(error("the last cutoff must be below the vocabulary size (each tail needs a word)"));
    }
    Ok(())
}

/// The head layer (`hidden` → `cutoffs[0]` words + one class per tail) and the tails of an adaptive softmax
/// over `vocab_size` words. `cutoffs` must pass [`check_cutoffs`].
pub fn init(hidden: usize, vocab_size: usize, cutoffs: &[usize], device: &Device) -> (Linear, Vec<AdaptiveTail>) {
    check_cutoffs(cutoffs, vocab_size).expect("cutoffs checked by the caller");
    let head = LinearConfig::new(hidden, cutoffs[0] + cutoffs.len()).init(device);
    let ends = cutoffs.iter().skip(1).copied().chain([vocab_size]);
    let tails = cutoffs
        .iter()
        .zip(ends)
        .enumerate()
        .map(|(index, (&start, end))| {
            let projected = (hidden >> (2 * (index + 1))).max(1);
            AdaptiveTail {
                projection: LinearConfig::new(hidden, projected).with_bias(false).init(device),
                output: LinearConfig::new(projected, end - start).init(device),
            }
        })
        .collect();
    (head, tails)
}

/// Where each word lies: the head's words first, then each tail's range, read from the layers' sizes.
struct Layout {
    /// First word id of each tail; the head holds `0..starts[0]`.
    starts: Vec<usize>,
}

impl Layout {
    fn of(head: &Linear, tails: &[AdaptiveTail]) -> Layout {
        let [_, head_classes] = head.weight.dims();
        let mut start = head_classes - tails.len();
        let starts = tails
            .iter()
            .map(|tail| {
                let [_, size] = tail.output.weight.dims();
                let this = start;
                start += size;
                this
            })
            .collect();
        Layout { starts }
    }

    /// The tail holding `word`, if it is not a head word.
    fn tail_of(&self, word: usize) -> Option<usize> {
        self.starts.iter().rposition(|&start| word >= start)
    }
}

/// `Σ_i weights_i · -log p(classes_i | states_i)` under the adaptive softmax of `head` and `tails`, a `[1]`
/// tensor; `classes` are word ids. `states`: `[rows, hidden]`. Rows of weight 0 (padding) cost nothing.
pub fn weighted_nll_adaptive(
    head: &Linear,
    tails: &[AdaptiveTail],
    states: Tensor<2>,
    targets: &RowTargets,
) -> Tensor<1> {
    let layout = Layout::of(head, tails);
    let device = states.device();
    let head_start = layout.starts.first().copied().unwrap_or(usize::MAX);
    let mut head_targets =
        RowTargets { classes: Vec::with_capacity(targets.classes.len()), weights: targets.weights.clone() };
    let mut tail_rows: Vec<(Vec<i64>, RowTargets)> =
        tails.iter().map(|_| (Vec::new(), RowTargets { classes: Vec::new(), weights: Vec::new() })).collect();
    for (row, (&word, &weight)) in targets.classes.iter().zip(&targets.weights).enumerate() {
        let word = word as usize;
        match layout.tail_of(word) {
            Some(tail) => {
                head_targets.classes.push((head_start + tail) as u32);
                if weight != 0.0 {
                    let (rows, tail_targets) = &mut tail_rows[tail];
                    rows.push(row as i64);
                    tail_targets.classes.push((word - layout.starts[tail]) as u32);
                    tail_targets.weights.push(weight);
                }
            }
            None => head_targets.classes.push(word as u32),
        }
    }
    let linear_nll = |layer: &Linear, input: Tensor<2>, targets: &RowTargets| {
        weighted_nll_optional_bias(input, layer.weight.val(), layer.bias.as_ref().map(|bias| bias.val()), targets)
    };
    let mut nll = linear_nll(head, states.clone(), &head_targets);
    for (tail, (rows, tail_targets)) in tails.iter().zip(&tail_rows) {
        if rows.is_empty() {
            continue;
        }
        let index: Tensor<1, Int> = Tensor::from_data(TensorData::new(rows.clone(), [rows.len()]), &device);
        let projected = tail.projection.forward(states.clone().select(0, index));
        nll = nll + linear_nll(&tail.output, projected, tail_targets);
    }
    nll
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::log_softmax;

    use super::*;

    #[test]
    fn cutoffs_are_checked_against_the_vocabulary() {
        assert!(check_cutoffs(&[4, 8], 12).is_ok());
        assert!(check_cutoffs(&[], 12).is_err());
        assert!(check_cutoffs(&[0, 8], 12).is_err());
        assert!(check_cutoffs(&[8, 4], 12).is_err());
        assert!(check_cutoffs(&[4, 12], 12).unwrap_err().to_string().contains("below the vocabulary size"));
    }

    /// Every word's probability, computed directly from the factorisation, for one state.
    fn probabilities(head: &Linear, tails: &[AdaptiveTail], state: Tensor<2>) -> Vec<f32> {
        let head_log = log_softmax(head.forward(state.clone()), 1).into_data().try_to_vec::<f32>().unwrap();
        let head_words = head_log.len() - tails.len();
        let mut probabilities: Vec<f32> = head_log[..head_words].iter().map(|l| l.exp()).collect();
        for (index, tail) in tails.iter().enumerate() {
            let tail_log = log_softmax(tail.output.forward(tail.projection.forward(state.clone())), 1);
            let cluster = head_log[head_words + index];
            probabilities.extend(tail_log.into_data().try_to_vec::<f32>().unwrap().iter().map(|l| (l + cluster).exp()));
        }
        probabilities
    }

    #[test]
    fn the_factored_probabilities_sum_to_one_and_give_the_loss() {
        let device = Device::flex();
        let (head, tails) = init(8, 12, &[4, 8], &device);
        let states: Tensor<2> = Tensor::random([3, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        // Row 0 a head word, row 1 a first-tail word (weight 2), row 2 padding in the second tail.
        let targets = RowTargets { classes: vec![2, 6, 11], weights: vec![1.0, 2.0, 0.0] };
        let loss: f32 = weighted_nll_adaptive(&head, &tails, states.clone(), &targets).into_scalar();
        let mut expected = 0.0;
        for (row, (&word, &weight)) in targets.classes.iter().zip(&targets.weights).enumerate() {
            let state = states.clone().slice([row..row + 1, 0..8]);
            let probabilities = probabilities(&head, &tails, state);
            assert_eq!(probabilities.len(), 12);
            let total: f32 = probabilities.iter().sum();
            assert!((total - 1.0).abs() < 1e-5, "probabilities sum to {total}");
            expected += weight * -probabilities[word as usize].ln();
        }
        assert!((loss - expected).abs() < 1e-4, "{loss} vs {expected}");
    }

    #[test]
    fn gradients_reach_the_head_the_tails_and_the_states() {
        let device = Device::flex().autodiff();
        let (head, tails) = init(8, 12, &[4, 8], &device);
        let states: Tensor<2> =
            Tensor::random([2, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device).require_grad();
        let targets = RowTargets { classes: vec![5, 1], weights: vec![1.0, 1.0] };
        let grads = weighted_nll_adaptive(&head, &tails, states.clone(), &targets).backward();
        let norm = |tensor: Option<Tensor<2>>| tensor.expect("a gradient").abs().sum().into_scalar::<f32>();
        assert!(norm(states.grad(&grads)) > 0.0);
        assert!(norm(head.weight.val().grad(&grads)) > 0.0);
        // Row 0's word is in the first tail; no row reaches the second, whose weights get no gradient.
        assert!(norm(tails[0].projection.weight.val().grad(&grads)) > 0.0);
        assert!(norm(tails[0].output.weight.val().grad(&grads)) > 0.0);
        assert!(tails[1].output.weight.val().grad(&grads).is_none());
    }
}
