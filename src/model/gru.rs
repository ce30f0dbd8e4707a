//! burn's `Gru`, run over whole sequences fast: the same module and weights (checkpoints are unchanged),
//! the same results, a fraction of the work.
//!
//! `Gru::forward` does, at every step, six products (input and hidden, for each of three gates) and
//! writes its state into the output with a slice assignment; under autodiff each of those is a graph node,
//! and each step's slice costs a sequence-sized zeroed gradient on the way back. [`run`] instead projects the
//! inputs of every step for all three gates in one GEMM, then runs the recurrence: on the CPU backend as
//! one autodiff node ([`super::gru_kernel`]: a GEMM and one fused pass over the gates per step, its own
//! backward pass), on other backends as tensor operations with the three gates fused into one product.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::nn::Gru;
use burn::nn::activation::Activation;
use burn::tensor::activation::{sigmoid, tanh};
use burn::tensor::{DType, Tensor};

use super::cpu_tensor::{flex, with_f32};
use super::gru_kernel::{self, GruShape, GruTrace};

/// Every step's state of `gru` reading `inputs` (`[batch, steps, input]`) from `initial` (zeros when
/// `None`): `[batch, steps, hidden]`, as `gru.forward(inputs, initial)` returns.
pub fn run(gru: &Gru, inputs: Tensor<3>, initial: Option<Tensor<2>>) -> Tensor<3> {
    if !is_standard_cell(gru) {
        return gru.forward(inputs, initial);
    }
    let [batch, steps, input] = inputs.shape().dims();
    let hidden = gru.d_hidden;
    let device = inputs.device();
    let initial = initial.unwrap_or_else(|| Tensor::zeros([batch, hidden], &device));
    if steps == 0 {
        return Tensor::zeros([batch, 0, hidden], &device);
    }
    let weights = FusedWeights::of(gru);
    let projected = (inputs.reshape([batch * steps, input]).matmul(weights.input) + weights.input_bias.unsqueeze())
        .reshape([batch, steps, 3 * hidden]);
    recurrence(projected, initial, weights.hidden, weights.candidate_bias)
}

/// The cell [`gru_kernel`] computes: burn's defaults (`reset_after`, sigmoid gates, tanh candidate, no clip).
fn is_standard_cell(gru: &Gru) -> bool {
    gru.reset_after
        && gru.clip.is_none()
        && matches!(gru.gate_activation, Activation::Sigmoid(_))
        && matches!(gru.hidden_activation, Activation::Tanh(_))
}

/// The three gates' parameters side by side (order z, r, n), as tensors of the autodiff graph: gradients
/// flow back through the concatenation into the module's own parameters.
struct FusedWeights {
    /// `[input, 3 * hidden]`.
    input: Tensor<2>,
    /// `[3 * hidden]`: the input biases, plus the hidden biases of z and r (they add up).
    input_bias: Tensor<1>,
    /// `[hidden, 3 * hidden]`.
    hidden: Tensor<2>,
    /// `[hidden]`: the candidate's hidden bias, which sits inside the reset product.
    candidate_bias: Tensor<1>,
}

impl FusedWeights {
    fn of(gru: &Gru) -> FusedWeights {
        let gates = [&gru.update_gate, &gru.reset_gate, &gru.new_gate];
        let hidden = gru.d_hidden;
        let device = gru.update_gate.hidden_transform.weight.device();
        let bias = |linear: &burn::nn::Linear| {
            linear.bias.as_ref().map_or_else(|| Tensor::zeros([hidden], &device), |bias| bias.val())
        };
        FusedWeights {
            input: Tensor::cat(gates.iter().map(|gate| gate.input_transform.weight.val()).collect(), 1),
            input_bias: Tensor::cat(
                vec![
                    bias(&gru.update_gate.input_transform) + bias(&gru.update_gate.hidden_transform),
                    bias(&gru.reset_gate.input_transform) + bias(&gru.reset_gate.hidden_transform),
                    bias(&gru.new_gate.input_transform),
                ],
                0,
            ),
            hidden: Tensor::cat(gates.iter().map(|gate| gate.hidden_transform.weight.val()).collect(), 1),
            candidate_bias: bias(&gru.new_gate.hidden_transform),
        }
    }
}

/// The recurrence over projected inputs (`[batch, steps, 3 * hidden]`): the CPU kernel when the tensors
/// live on the CPU backend in f32 (with or without autodiff), tensor operations otherwise.
fn recurrence(projected: Tensor<3>, initial: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<3> {
    if projected.dtype() == DType::F32 {
        let inputs = (&projected, &initial, &weight, &bias);
        if let Some(states) = on_autodiff_flex::no_checkpointing(inputs)
            .or_else(|| on_autodiff_flex::balanced_checkpointing(inputs))
            .or_else(|| on_flex(inputs))
        {
            return states;
        }
    }
    recurrence_with_tensors(projected, initial, weight, bias)
}

type Inputs<'a> = (&'a Tensor<3>, &'a Tensor<2>, &'a Tensor<2>, &'a Tensor<1>);

/// The kernel without autodiff, when every input is a plain CPU-backend tensor.
fn on_flex((projected, initial, weight, bias): Inputs) -> Option<Tensor<3>> {
    let primitive = |tensor: burn::tensor::Tensor<3>| tensor.try_into_primitive::<Flex>().ok();
    let projected = primitive(projected.clone())?;
    let initial = primitive(initial.clone().unsqueeze())?;
    let weight = primitive(weight.clone().unsqueeze())?;
    let bias = primitive(bias.clone().unsqueeze())?;
    let (states, _) = kernel_forward(&projected, &initial, &weight, &bias);
    Some(Tensor::from_primitive::<Flex>(states))
}

/// The kernel as one autodiff node, for each of the two checkpointing strategies a device can use (the
/// strategy is part of the backend type, and burn converts only to the device's own).
mod on_autodiff_flex {
    use super::*;

    macro_rules! with_strategy {
        ($name:ident, $strategy:ty) => {
            pub(super) fn $name((projected, initial, weight, bias): Inputs) -> Option<Tensor<3>> {
                type Backend = Autodiff<Flex, $strategy>;
                let primitive = |tensor: Tensor<3>| tensor.try_into_primitive::<Backend>().ok();
                let projected = primitive(projected.clone())?;
                let initial = primitive(initial.clone().unsqueeze())?;
                let weight = primitive(weight.clone().unsqueeze())?;
                let bias = primitive(bias.clone().unsqueeze())?;
                Some(Tensor::from_primitive::<Backend>(tracked::<$strategy>(projected, initial, weight, bias)))
            }
        };
    }
    with_strategy!(no_checkpointing, NoCheckpointing);
    with_strategy!(balanced_checkpointing, BalancedCheckpointing);
}

type AutodiffTensor = burn::backend::tensor::FloatTensor<Autodiff<Flex>>;

fn tracked<C: CheckpointStrategy>(
    projected: AutodiffTensor,
    initial: AutodiffTensor,
    weight: AutodiffTensor,
    bias: AutodiffTensor,
) -> AutodiffTensor {
    let nodes = [projected.node(), initial.node(), weight.node(), bias.node()];
    match RecurrenceBackward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (initial, weight) = (initial.primitive().clone(), weight.primitive().clone());
            let (states, trace) = kernel_forward(projected.primitive(), &initial, &weight, bias.primitive());
            let state = RecurrenceState {
                trace,
                states: states.clone(),
                initial,
                weight,
                bias_shape: bias.primitive().shape(),
            };
            prep.finish(state, states)
        }
        OpsKind::UnTracked(prep) => prep
            .finish(kernel_forward(projected.primitive(), initial.primitive(), weight.primitive(), bias.primitive()).0),
    }
}

/// The backward node of the recurrence; its parents are (projected inputs, initial state, hidden weight,
/// candidate bias).
#[derive(Debug)]
struct RecurrenceBackward;

/// What the backward pass keeps from the forward pass.
#[derive(Debug, Clone)]
struct RecurrenceState {
    trace: (GruShape, GruTrace),
    states: FlexTensor,
    initial: FlexTensor,
    weight: FlexTensor,
    bias_shape: burn::tensor::Shape,
}

impl Backward<Flex, 4> for RecurrenceBackward {
    type State = RecurrenceState;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [projected_node, initial_node, weight_node, bias_node] = ops.parents;
        let d_states: FlexTensor = grads.consume::<Flex>(&ops.node);
        let RecurrenceState { trace: (shape, trace), states, initial, weight, bias_shape } = ops.state;
        let gradients = with_f32(&states, |states| {
            with_f32(&initial, |initial| {
                with_f32(&weight, |weight| {
                    with_f32(&d_states, |d_states| {
                        gru_kernel::backward(shape, &trace, states, initial, weight, d_states)
                    })
                })
            })
        });
        let GruShape { batch, steps, hidden } = shape;
        if let Some(node) = projected_node {
            grads.register::<Flex>(node.id, flex(gradients.inputs, [batch, steps, 3 * hidden]));
        }
        if let Some(node) = initial_node {
            grads.register::<Flex>(node.id, flex(gradients.initial, initial.shape()));
        }
        if let Some(node) = weight_node {
            grads.register::<Flex>(node.id, flex(gradients.hidden_weight, weight.shape()));
        }
        if let Some(node) = bias_node {
            grads.register::<Flex>(node.id, flex(gradients.candidate_bias, bias_shape));
        }
    }
}

/// Runs [`gru_kernel::forward`] on CPU-backend tensors: the states `[batch, steps, hidden]` and the trace.
fn kernel_forward(
    projected: &FlexTensor,
    initial: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
) -> (FlexTensor, (GruShape, GruTrace)) {
    let [batch, steps, gates] = projected.shape().dims();
    let shape = GruShape { batch, steps, hidden: gates / 3 };
    let (states, trace) = with_f32(projected, |projected| {
        with_f32(initial, |initial| {
            with_f32(weight, |weight| {
                with_f32(bias, |bias| gru_kernel::forward(shape, projected, initial, weight, bias))
            })
        })
    });
    (flex(states, [batch, steps, gates / 3]), (shape, trace))
}

/// The recurrence in tensor operations, for backends without the kernel: one product per step for all
/// three gates' hidden projections.
fn recurrence_with_tensors(projected: Tensor<3>, initial: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<3> {
    let [batch, steps, gates] = projected.shape().dims();
    let hidden = gates / 3;
    let bias = bias.unsqueeze::<2>();
    let mut state = initial;
    let mut states = Vec::with_capacity(steps);
    for step in 0..steps {
        let x: Tensor<2> = projected.clone().slice([0..batch, step..step + 1, 0..gates]).reshape([batch, gates]);
        let p = state.clone().matmul(weight.clone());
        let update_reset =
            sigmoid(x.clone().slice([0..batch, 0..2 * hidden]) + p.clone().slice([0..batch, 0..2 * hidden]));
        let z = update_reset.clone().slice([0..batch, 0..hidden]);
        let r = update_reset.slice([0..batch, hidden..2 * hidden]);
        let n =
            tanh(x.slice([0..batch, 2 * hidden..gates]) + r * (p.slice([0..batch, 2 * hidden..gates]) + bias.clone()));
        state = n.clone() + z * (state - n);
        states.push(state.clone().unsqueeze_dim::<3>(1));
    }
    Tensor::cat(states, 1)
}

#[cfg(test)]
mod tests {
    use burn::nn::GruConfig;

    use super::*;

    /// Inputs, a GRU and the gradient-carrying loss `Σ probe ⊙ states` on `device`.
    fn compare(device: &burn::tensor::Device, run_fast: impl Fn(&Gru, Tensor<3>, Tensor<2>) -> Tensor<3>) {
        let gru = GruConfig::new(5, 6, true).init(device);
        let mut inputs: Tensor<3> = Tensor::random([3, 7, 5], burn::tensor::Distribution::Normal(0.0, 1.0), device);
        let mut initial: Tensor<2> = Tensor::random([3, 6], burn::tensor::Distribution::Normal(0.0, 0.5), device);
        if device.is_autodiff() {
            (inputs, initial) = (inputs.require_grad(), initial.require_grad());
        }
        let probe: Tensor<3> = Tensor::random([3, 7, 6], burn::tensor::Distribution::Normal(0.0, 1.0), device);
        let expected = gru.forward(inputs.clone(), Some(initial.clone()));
        let fast = run_fast(&gru, inputs.clone(), initial.clone());
        let (expected_values, fast_values): (Vec<f32>, Vec<f32>) =
            (expected.clone().into_data().try_to_vec().unwrap(), fast.clone().into_data().try_to_vec().unwrap());
        for (a, b) in expected_values.iter().zip(&fast_values) {
            assert!((a - b).abs() < 1e-5, "states {a} vs {b}");
        }
        if !device.is_autodiff() {
            return;
        }
        let gradients = |states: Tensor<3>| {
            let grads = (states * probe.clone()).sum().backward();
            let weight = |tensor: Tensor<2>| tensor.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
            let bias = |tensor: Tensor<1>| tensor.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
            // The inputs' and the initial state's gradients, then every parameter's.
            let mut all = weight(initial.clone());
            all.extend(inputs.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap());
            for gate in [&gru.update_gate, &gru.reset_gate, &gru.new_gate] {
                for linear in [&gate.input_transform, &gate.hidden_transform] {
                    all.extend(weight(linear.weight.val()));
                    all.extend(bias(linear.bias.as_ref().unwrap().val()));
                }
            }
            all
        };
        let (expected_grads, fast_grads) = (gradients(expected), gradients(fast));
        assert_eq!(expected_grads.len(), fast_grads.len());
        for (a, b) in expected_grads.iter().zip(&fast_grads) {
            assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "gradient {a} vs {b}");
        }
    }

    #[test]
    fn the_kernel_matches_burns_gru_with_and_without_autodiff() {
        let device = burn::tensor::Device::flex();
        // The kernel, not the fallback, serves both devices.
        for device in [device.clone(), device.clone().autodiff()] {
            let (projected, initial) = (Tensor::zeros([2, 3, 6], &device), Tensor::zeros([2, 2], &device));
            let (weight, bias) = (Tensor::zeros([2, 6], &device), Tensor::zeros([2], &device));
            let inputs = (&projected, &initial, &weight, &bias);
            let served = on_autodiff_flex::no_checkpointing(inputs).or_else(|| on_flex(inputs));
            assert!(served.is_some(), "no kernel for {device:?}");
        }
        compare(&device, |gru, inputs, initial| run(gru, inputs, Some(initial)));
        compare(&device.clone().autodiff(), |gru, inputs, initial| run(gru, inputs, Some(initial)));
    }

    #[test]
    fn the_tensor_fallback_matches_burns_gru() {
        let device = burn::tensor::Device::flex().autodiff();
        compare(&device, |gru, inputs, initial| {
            let [batch, steps, input] = inputs.shape().dims();
            let weights = FusedWeights::of(gru);
            let projected = (inputs.reshape([batch * steps, input]).matmul(weights.input)
                + weights.input_bias.unsqueeze())
            .reshape([batch, steps, 3 * gru.d_hidden]);
            recurrence_with_tensors(projected, initial, weights.hidden, weights.candidate_bias)
        });
    }
}
