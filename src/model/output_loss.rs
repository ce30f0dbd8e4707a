//! The output layer and its softmax loss as one operation: `Σ_i w_i · -log softmax(x_i W + b)[t_i]`.
//!
//! Written with tensor operations, the loss materialises the logits, their log-softmax, a gathered copy and
//! on the way back a zeroed gradient as large as the logits for the gather plus another for the softmax; it
//! also computes the logits of padding positions that the mask then throws away. On the CPU backend this is
//! one autodiff node instead: it keeps only the rows that count (weight not 0), writes the logits once,
//! turns them into their own gradient in place on the way back (`w_i · (softmax - one-hot)`), and does the
//! three products (logits, input gradient, weight gradient) with [`super::blas`]. Both decoders of a
//! skip-thought model share the output layer, so their rows go through one call.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Int, Tensor, TensorData};
use rayon::prelude::*;

use super::blas::sgemm;
use super::cpu_tensor::{flex, with_f32};

/// Which rows count and how much: each row's target class and weight (0 for padding).
#[derive(Debug, Clone)]
pub struct RowTargets {
    pub classes: Vec<u32>,
    pub weights: Vec<f32>,
}

/// [`weighted_nll`] through a layer's weight and its bias if it has one (zeros otherwise).
pub fn weighted_nll_optional_bias(
    states: Tensor<2>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    targets: &RowTargets,
) -> Tensor<1> {
    let [_, classes] = weight.dims();
    let bias = bias.unwrap_or_else(|| Tensor::zeros([classes], &states.device()));
    weighted_nll(states, weight, bias, targets)
}

/// `Σ_i weights_i · -log softmax(states_i · weight + bias)[classes_i]`, a `[1]` tensor.
///
/// `states`: `[rows, hidden]`; `weight`: `[hidden, classes]`; `bias`: `[classes]`.
pub fn weighted_nll(states: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>, targets: &RowTargets) -> Tensor<1> {
    let [rows, _] = states.shape().dims();
    assert_eq!(targets.classes.len(), rows, "one target per row");
    assert_eq!(targets.weights.len(), rows, "one weight per row");
    if states.dtype() == DType::F32 {
        let inputs = (&states, &weight, &bias);
        if let Some(loss) = on_autodiff_flex::no_checkpointing(inputs, targets)
            .or_else(|| on_autodiff_flex::balanced_checkpointing(inputs, targets))
            .or_else(|| on_flex(inputs, targets))
        {
            return loss;
        }
    }
    weighted_nll_with_tensors(states, weight, bias, targets)
}

/// The same loss in tensor operations, for backends without the kernel.
fn weighted_nll_with_tensors(states: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>, targets: &RowTargets) -> Tensor<1> {
    let device = states.device();
    let rows = targets.classes.len();
    let classes: Vec<i64> = targets.classes.iter().map(|&class| i64::from(class)).collect();
    let classes: Tensor<2, Int> = Tensor::from_data(TensorData::new(classes, [rows, 1]), &device);
    let weights: Tensor<2> = Tensor::from_data(TensorData::new(targets.weights.clone(), [rows, 1]), &device);
    let log_probs = log_softmax(states.matmul(weight) + bias.unsqueeze(), 1);
    (log_probs.gather(1, classes) * weights).sum().neg()
}

type Inputs<'a> = (&'a Tensor<2>, &'a Tensor<2>, &'a Tensor<1>);

fn on_flex((states, weight, bias): Inputs, targets: &RowTargets) -> Option<Tensor<1>> {
    let states = states.clone().try_into_primitive::<Flex>().ok()?;
    let weight = weight.clone().try_into_primitive::<Flex>().ok()?;
    let bias = bias.clone().try_into_primitive::<Flex>().ok()?;
    let (loss, _) = forward(&states, &weight, &bias, targets);
    Some(Tensor::from_primitive::<Flex>(loss))
}

/// The kernel as one autodiff node, for each checkpointing strategy (part of the backend type).
mod on_autodiff_flex {
    use super::*;

    macro_rules! with_strategy {
        ($name:ident, $strategy:ty) => {
            pub(super) fn $name((states, weight, bias): Inputs, targets: &RowTargets) -> Option<Tensor<1>> {
                type Backend = Autodiff<Flex, $strategy>;
                let states = states.clone().try_into_primitive::<Backend>().ok()?;
                let weight = weight.clone().try_into_primitive::<Backend>().ok()?;
                let bias = bias.clone().try_into_primitive::<Backend>().ok()?;
                Some(Tensor::from_primitive::<Backend>(tracked::<$strategy>(states, weight, bias, targets)))
            }
        };
    }
    with_strategy!(no_checkpointing, NoCheckpointing);
    with_strategy!(balanced_checkpointing, BalancedCheckpointing);
}

type AutodiffTensor = burn::backend::tensor::FloatTensor<Autodiff<Flex>>;

fn tracked<C: CheckpointStrategy>(
    states: AutodiffTensor,
    weight: AutodiffTensor,
    bias: AutodiffTensor,
    targets: &RowTargets,
) -> AutodiffTensor {
    match LossBackward.prepare::<C>([states.node(), weight.node(), bias.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (loss, saved) = forward(states.primitive(), weight.primitive(), bias.primitive(), targets);
            prep.finish(
                LossState { saved, weight: weight.primitive().clone(), states_shape: states.primitive().shape() },
                loss,
            )
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(forward(states.primitive(), weight.primitive(), bias.primitive(), targets).0)
        }
    }
}

/// What the forward pass leaves for the backward pass.
#[derive(Debug, Clone)]
struct Saved {
    /// Indices of the rows that count.
    kept: Vec<usize>,
    /// Their states, `[kept, hidden]`.
    states: Vec<f32>,
    /// Their logits, `[kept, classes]`.
    logits: Vec<f32>,
    /// Each kept row's log-sum-exp, class and weight.
    log_sum_exp: Vec<f32>,
    classes: Vec<u32>,
    weights: Vec<f32>,
}

#[derive(Debug)]
struct LossBackward;

#[derive(Debug, Clone)]
struct LossState {
    saved: Saved,
    weight: FlexTensor,
    states_shape: burn::tensor::Shape,
}

impl Backward<Flex, 3> for LossBackward {
    type State = LossState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [states_node, weight_node, bias_node] = ops.parents;
        let scale: f32 = with_f32(&grads.consume::<Flex>(&ops.node), |values| values[0]);
        let LossState { saved, weight, states_shape } = ops.state;
        let [rows, hidden] = states_shape.dims();
        let [_, classes] = weight.shape().dims();
        let Saved { kept, states, mut logits, log_sum_exp, classes: targets, weights } = saved;
        // The logits become their gradient: w · (softmax - one-hot), scaled by the incoming gradient.
        logits.par_chunks_mut(classes.max(1)).enumerate().for_each(|(row, values)| {
            let factor = scale * weights[row];
            for value in values.iter_mut() {
                *value = factor * (*value - log_sum_exp[row]).exp();
            }
            values[targets[row] as usize] -= factor;
        });
        let d_logits = logits;
        let n_kept = kept.len();
        if let Some(node) = states_node {
            let mut d_kept = vec![0.0; n_kept * hidden];
            with_f32(&weight, |weight| {
                sgemm(
                    (n_kept, hidden, classes),
                    &mut d_kept,
                    hidden,
                    false,
                    &d_logits,
                    (classes, 1),
                    weight,
                    (1, classes),
                )
            });
            let mut d_states = vec![0.0; rows * hidden];
            for (index, &row) in kept.iter().enumerate() {
                d_states[row * hidden..(row + 1) * hidden]
                    .copy_from_slice(&d_kept[index * hidden..(index + 1) * hidden]);
            }
            grads.register::<Flex>(node.id, flex(d_states, [rows, hidden]));
        }
        if let Some(node) = weight_node {
            let mut d_weight = vec![0.0; hidden * classes];
            sgemm(
                (hidden, classes, n_kept),
                &mut d_weight,
                classes,
                false,
                &states,
                (1, hidden),
                &d_logits,
                (classes, 1),
            );
            grads.register::<Flex>(node.id, flex(d_weight, [hidden, classes]));
        }
        if let Some(node) = bias_node {
            let mut d_bias = vec![0.0; classes];
            for row in d_logits.chunks_exact(classes.max(1)) {
                for (sum, value) in d_bias.iter_mut().zip(row) {
                    *sum += value;
                }
            }
            grads.register::<Flex>(node.id, flex(d_bias, [classes]));
        }
    }
}

/// The loss (`[1]`) and what its backward pass needs.
fn forward(states: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor, targets: &RowTargets) -> (FlexTensor, Saved) {
    let [_, hidden] = states.shape().dims();
    let [_, classes] = weight.shape().dims();
    let kept: Vec<usize> = (0..targets.weights.len()).filter(|&row| targets.weights[row] != 0.0).collect();
    for &row in &kept {
        assert!((targets.classes[row] as usize) < classes, "target class {} of {classes}", targets.classes[row]);
    }
    let kept_states: Vec<f32> = with_f32(states, |states| {
        kept.iter().flat_map(|&row| states[row * hidden..(row + 1) * hidden].iter().copied()).collect()
    });
    let mut logits: Vec<f32> = with_f32(bias, |bias| kept.iter().flat_map(|_| bias.iter().copied()).collect());
    with_f32(weight, |weight| {
        sgemm(
            (kept.len(), classes, hidden),
            &mut logits,
            classes,
            true,
            &kept_states,
            (hidden, 1),
            weight,
            (classes, 1),
        )
    });
    let classes_kept: Vec<u32> = kept.iter().map(|&row| targets.classes[row]).collect();
    let weights_kept: Vec<f32> = kept.iter().map(|&row| targets.weights[row]).collect();
    let per_row: Vec<(f32, f32)> = logits
        .par_chunks(classes.max(1))
        .zip(classes_kept.par_iter().zip(&weights_kept))
        .map(|(values, (&class, &weight))| {
            let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = values.iter().map(|&value| (value - max).exp()).sum();
            let log_sum_exp = max + sum.ln();
            (log_sum_exp, weight * (log_sum_exp - values[class as usize]))
        })
        .collect();
    let loss: f64 = per_row.iter().map(|&(_, nll)| f64::from(nll)).sum();
    let saved = Saved {
        kept,
        states: kept_states,
        logits,
        log_sum_exp: per_row.iter().map(|&(log_sum_exp, _)| log_sum_exp).collect(),
        classes: classes_kept,
        weights: weights_kept,
    };
    (flex(vec![loss as f32], [1]), saved)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;

    #[test]
    fn the_kernel_matches_the_tensor_loss_and_its_gradients() {
        let device = Device::flex().autodiff();
        let states: Tensor<2> = Tensor::random([5, 4], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let weight: Tensor<2> = Tensor::random([4, 7], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let bias: Tensor<1> = Tensor::random([7], Distribution::Normal(0.0, 1.0), &device).require_grad();
        // Row 2 is padding; row 4 counts twice.
        let targets = RowTargets { classes: vec![0, 6, 3, 2, 5], weights: vec![1.0, 1.0, 0.0, 1.0, 2.0] };
        let values = |loss: Tensor<1>| {
            let value: f32 = loss.clone().into_scalar();
            let grads = (loss * 0.5).backward();
            let grad = |tensor: Tensor<2>| tensor.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
            let mut all = vec![value];
            all.extend(grad(states.clone()));
            all.extend(grad(weight.clone()));
            all.extend(bias.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap());
            all
        };
        let kernel = values(weighted_nll(states.clone(), weight.clone(), bias.clone(), &targets));
        let reference = values(weighted_nll_with_tensors(states.clone(), weight.clone(), bias.clone(), &targets));
        assert!(on_autodiff_flex::no_checkpointing((&states, &weight, &bias), &targets).is_some(), "kernel used");
        for (a, b) in kernel.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
        // Without autodiff too.
        let plain = Device::flex();
        let loss = |device: &Device| {
            let to = |tensor: Tensor<2>| Tensor::<2>::from_data(tensor.into_data(), device);
            let bias = Tensor::<1>::from_data(bias.clone().into_data(), device);
            weighted_nll(to(states.clone()), to(weight.clone()), bias, &targets).into_scalar::<f32>()
        };
        assert!((loss(&plain) - kernel[0]).abs() < 1e-4);
    }
}
