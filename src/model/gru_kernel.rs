//! A GRU recurrence over a whole sequence, forward and backward, on plain `f32` slices.
//!
//! Training spends most of its time in the recurrence, not in its arithmetic: written with tensor
//! operations, every time step is a dozen small autodiff nodes, and cutting one step's input out of the
//! sequence costs, on the way back, a zeroed gradient as large as the whole sequence (burn's slice backward).
//! Here the sequence is one node: the input projections of all steps arrive precomputed (one GEMM outside),
//! each step is one GEMM for the hidden projections of the three gates plus one fused pass over the gates,
//! and the backward pass walks the steps in reverse in preallocated buffers, summing the hidden weights'
//! gradient in one GEMM at the end.
//!
//! The cell is burn's `Gru` with `reset_after` (and PyTorch's and cuDNN's GRU):
//! `z = σ(x_z + h W_z + b_z)`, `r = σ(x_r + h W_r + b_r)`, `n = tanh(x_n + r ⊙ (h W_n + b_n))`,
//! `h' = (1 - z) ⊙ n + z ⊙ h`, where `x_*` already holds the input projection and every bias except `b_n`
//! (the one inside the reset product).

use super::blas::sgemm as product;

/// Sizes of one sequence batch: `batch` rows, `steps` time steps, `hidden` state units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GruShape {
    pub batch: usize,
    pub steps: usize,
    pub hidden: usize,
}

/// What the backward pass needs from the forward pass.
#[derive(Debug, Clone)]
pub struct GruTrace {
    /// `[batch, steps, 3 * hidden]`: the gate values `z`, `r`, `n` of each step.
    gates: Vec<f32>,
    /// `[batch, steps, hidden]`: `h W_n + b_n`, the hidden part of the candidate before the reset gate.
    hidden_candidate: Vec<f32>,
}

/// Gradients of one sequence's inputs.
#[derive(Debug, Clone)]
pub struct GruGradients {
    /// `[batch, steps, 3 * hidden]`, the gradient of the input projections.
    pub inputs: Vec<f32>,
    /// `[batch, hidden]`.
    pub initial: Vec<f32>,
    /// `[hidden, 3 * hidden]`.
    pub hidden_weight: Vec<f32>,
    /// `[hidden]`.
    pub candidate_bias: Vec<f32>,
}

impl GruShape {
    fn gates(&self) -> usize {
        3 * self.hidden
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Runs the recurrence. `inputs`: `[batch, steps, 3 * hidden]` input projections with biases (gate order
/// z, r, n); `initial`: `[batch, hidden]`; `hidden_weight`: `[hidden, 3 * hidden]`; `candidate_bias`:
/// `[hidden]`. Returns every step's state, `[batch, steps, hidden]`, and the trace for [`backward`].
pub fn forward(
    shape: GruShape,
    inputs: &[f32],
    initial: &[f32],
    hidden_weight: &[f32],
    candidate_bias: &[f32],
) -> (Vec<f32>, GruTrace) {
    let GruShape { batch, steps, hidden } = shape;
    let gates = shape.gates();
    assert_eq!(inputs.len(), batch * steps * gates, "inputs");
    assert_eq!(initial.len(), batch * hidden, "initial state");
    assert_eq!(hidden_weight.len(), hidden * gates, "hidden weight");
    assert_eq!(candidate_bias.len(), hidden, "candidate bias");
    let mut states = vec![0.0; batch * steps * hidden];
    let mut trace =
        GruTrace { gates: vec![0.0; batch * steps * gates], hidden_candidate: vec![0.0; batch * steps * hidden] };
    let mut projected = vec![0.0; batch * gates];
    for step in 0..steps {
        // The previous state: the initial one, or column `step - 1` of `states` (row stride steps * hidden).
        let (previous, previous_row): (&[f32], usize) =
            if step == 0 { (initial, hidden) } else { (&states[(step - 1) * hidden..], steps * hidden) };
        product(
            (batch, gates, hidden),
            &mut projected,
            gates,
            false,
            previous,
            (previous_row, 1),
            hidden_weight,
            (gates, 1),
        );
        for row in 0..batch {
            let at = row * steps + step;
            let x = &inputs[at * gates..(at + 1) * gates];
            let p = &projected[row * gates..(row + 1) * gates];
            let (before, after) = states.split_at_mut(at * hidden);
            let previous_state =
                if step == 0 { &initial[row * hidden..(row + 1) * hidden] } else { &before[(at - 1) * hidden..] };
            let state_out = &mut after[..hidden];
            let gate_out = &mut trace.gates[at * gates..(at + 1) * gates];
            let candidate_out = &mut trace.hidden_candidate[at * hidden..(at + 1) * hidden];
            for unit in 0..hidden {
                let z = sigmoid(x[unit] + p[unit]);
                let r = sigmoid(x[hidden + unit] + p[hidden + unit]);
                let hidden_candidate = p[2 * hidden + unit] + candidate_bias[unit];
                let n = (x[2 * hidden + unit] + r * hidden_candidate).tanh();
                let h = previous_state[unit];
                gate_out[unit] = z;
                gate_out[hidden + unit] = r;
                gate_out[2 * hidden + unit] = n;
                candidate_out[unit] = hidden_candidate;
                state_out[unit] = n + z * (h - n);
            }
        }
    }
    (states, trace)
}

/// Gradients of [`forward`]'s inputs given the gradient of its output `d_states` (`[batch, steps, hidden]`).
pub fn backward(
    shape: GruShape,
    trace: &GruTrace,
    states: &[f32],
    initial: &[f32],
    hidden_weight: &[f32],
    d_states: &[f32],
) -> GruGradients {
    let GruShape { batch, steps, hidden } = shape;
    let gates = shape.gates();
    assert_eq!(d_states.len(), batch * steps * hidden, "output gradient");
    assert_eq!(states.len(), batch * steps * hidden, "states");
    let mut d_inputs = vec![0.0; batch * steps * gates];
    // The gradient of each step's hidden projection `h W + [0, 0, b_n]`, kept for the weight's gradient.
    let mut d_projected = vec![0.0; batch * steps * gates];
    let mut d_state = vec![0.0; batch * hidden];
    let mut d_previous = vec![0.0; batch * hidden];
    for step in (0..steps).rev() {
        for row in 0..batch {
            let at = row * steps + step;
            let previous_state = if step == 0 {
                &initial[row * hidden..(row + 1) * hidden]
            } else {
                &states[(at - 1) * hidden..at * hidden]
            };
            let gate = &trace.gates[at * gates..(at + 1) * gates];
            let hidden_candidate = &trace.hidden_candidate[at * hidden..(at + 1) * hidden];
            let d_out = &d_states[at * hidden..(at + 1) * hidden];
            let dh_row = &mut d_state[row * hidden..(row + 1) * hidden];
            let d_previous_row = &mut d_previous[row * hidden..(row + 1) * hidden];
            let d_x = &mut d_inputs[at * gates..(at + 1) * gates];
            let d_p = &mut d_projected[at * gates..(at + 1) * gates];
            for unit in 0..hidden {
                let dh = dh_row[unit] + d_out[unit];
                let (z, r, n) = (gate[unit], gate[hidden + unit], gate[2 * hidden + unit]);
                let h = previous_state[unit];
                let d_n = dh * (1.0 - z);
                let d_z = dh * (h - n);
                let d_candidate = d_n * (1.0 - n * n);
                let d_r = d_candidate * hidden_candidate[unit];
                let d_z_in = d_z * z * (1.0 - z);
                let d_r_in = d_r * r * (1.0 - r);
                d_x[unit] = d_z_in;
                d_x[hidden + unit] = d_r_in;
                d_x[2 * hidden + unit] = d_candidate;
                d_p[unit] = d_z_in;
                d_p[hidden + unit] = d_r_in;
                d_p[2 * hidden + unit] = d_candidate * r;
                d_previous_row[unit] = dh * z;
            }
        }
        // d h_{t-1} = dh ⊙ z + d_projected_t · Wᵀ (W read transposed: element (g, u) at u * gates + g).
        product(
            (batch, hidden, gates),
            &mut d_previous,
            hidden,
            true,
            &d_projected[step * gates..],
            (steps * gates, 1),
            hidden_weight,
            (1, gates),
        );
        std::mem::swap(&mut d_state, &mut d_previous);
    }
    // dW = Σ_t h_{t-1}ᵀ · d_projected_t, as one product over every (row, step): the previous states are the
    // outputs shifted one step, with the initial state first.
    let mut previous_states = vec![0.0; batch * steps * hidden];
    for row in 0..batch {
        let rows = &mut previous_states[row * steps * hidden..(row + 1) * steps * hidden];
        rows[..hidden].copy_from_slice(&initial[row * hidden..(row + 1) * hidden]);
        rows[hidden..].copy_from_slice(&states[row * steps * hidden..((row + 1) * steps - 1) * hidden]);
    }
    let mut d_hidden_weight = vec![0.0; hidden * gates];
    product(
        (hidden, gates, batch * steps),
        &mut d_hidden_weight,
        gates,
        false,
        &previous_states,
        (1, hidden),
        &d_projected,
        (gates, 1),
    );
    let mut d_candidate_bias = vec![0.0; hidden];
    for chunk in d_projected.chunks_exact(gates) {
        for (sum, value) in d_candidate_bias.iter_mut().zip(&chunk[2 * hidden..]) {
            *sum += value;
        }
    }
    GruGradients {
        inputs: d_inputs,
        initial: d_state,
        hidden_weight: d_hidden_weight,
        candidate_bias: d_candidate_bias,
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    fn random(rng: &mut impl Rng, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    }

    struct Case {
        shape: GruShape,
        inputs: Vec<f32>,
        initial: Vec<f32>,
        weight: Vec<f32>,
        bias: Vec<f32>,
        /// A fixed linear read-out of the states, so the loss is `Σ probe ⊙ states`.
        probe: Vec<f32>,
    }

    fn case(batch: usize, steps: usize, hidden: usize) -> Case {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let shape = GruShape { batch, steps, hidden };
        Case {
            shape,
            inputs: random(&mut rng, batch * steps * 3 * hidden, 1.0),
            initial: random(&mut rng, batch * hidden, 0.5),
            weight: random(&mut rng, hidden * 3 * hidden, 0.5),
            bias: random(&mut rng, hidden, 0.5),
            probe: random(&mut rng, batch * steps * hidden, 1.0),
        }
    }

    /// The cell written out one scalar at a time in f64: the reference both passes are checked against.
    fn reference_states(case: &Case, inputs: &[f32], initial: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f64> {
        let GruShape { batch, steps, hidden } = case.shape;
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let mut out = vec![0.0; batch * steps * hidden];
        for row in 0..batch {
            let mut h: Vec<f64> = initial[row * hidden..(row + 1) * hidden].iter().map(|&v| v as f64).collect();
            for step in 0..steps {
                let x = &inputs[(row * steps + step) * 3 * hidden..];
                let project = |gate: usize, unit: usize| -> f64 {
                    (0..hidden).map(|k| h[k] * weight[k * 3 * hidden + gate * hidden + unit] as f64).sum()
                };
                let next: Vec<f64> = (0..hidden)
                    .map(|u| {
                        let z = sigmoid(x[u] as f64 + project(0, u));
                        let r = sigmoid(x[hidden + u] as f64 + project(1, u));
                        let n = (x[2 * hidden + u] as f64 + r * (project(2, u) + bias[u] as f64)).tanh();
                        (1.0 - z) * n + z * h[u]
                    })
                    .collect();
                h = next;
                out[(row * steps + step) * hidden..][..hidden].copy_from_slice(&h);
            }
        }
        out
    }

    fn loss(case: &Case, inputs: &[f32], initial: &[f32], weight: &[f32], bias: &[f32]) -> f64 {
        let states = reference_states(case, inputs, initial, weight, bias);
        states.iter().zip(&case.probe).map(|(s, &p)| s * p as f64).sum()
    }

    #[test]
    fn forward_matches_the_cell_written_out() {
        let case = case(3, 5, 4);
        let (states, _) = forward(case.shape, &case.inputs, &case.initial, &case.weight, &case.bias);
        let expected = reference_states(&case, &case.inputs, &case.initial, &case.weight, &case.bias);
        for (a, b) in states.iter().zip(&expected) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let case = case(2, 4, 3);
        let (states, trace) = forward(case.shape, &case.inputs, &case.initial, &case.weight, &case.bias);
        let grads = backward(case.shape, &trace, &states, &case.initial, &case.weight, &case.probe);
        let epsilon = 1e-3;
        // Central differences of the f64 reference in each input tensor, one element at a time.
        let check = |name: &str, analytic: &[f32], which: usize| {
            let base = [&case.inputs, &case.initial, &case.weight, &case.bias][which];
            for index in 0..base.len() {
                let mut shifted: [Vec<f32>; 4] =
                    [case.inputs.clone(), case.initial.clone(), case.weight.clone(), case.bias.clone()];
                shifted[which][index] += epsilon;
                let up = loss(&case, &shifted[0], &shifted[1], &shifted[2], &shifted[3]);
                shifted[which][index] -= 2.0 * epsilon;
                let down = loss(&case, &shifted[0], &shifted[1], &shifted[2], &shifted[3]);
                let numeric = (up - down) / (2.0 * epsilon as f64);
                let error = (analytic[index] as f64 - numeric).abs();
                assert!(error < 2e-3 * (1.0 + numeric.abs()), "{name}[{index}]: {} vs {numeric}", analytic[index]);
            }
        };
        check("inputs", &grads.inputs, 0);
        check("initial", &grads.initial, 1);
        check("hidden_weight", &grads.hidden_weight, 2);
        check("candidate_bias", &grads.candidate_bias, 3);
    }
}
