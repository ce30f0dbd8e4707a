//! The linear map from a word-vector space into the encoder's word-embedding space (Kiros et al. 2015,
//! section 2.2: an un-regularised linear regression fitted on the words both share).
//!
//! Ordinary least squares with a bias, through the normal equations in f64 and a Cholesky factorisation:
//! the system is only `(dim + 1)²`, however many words are fitted. A ridge of 1e-8 of the mean diagonal
//! keeps it solvable when some input dimensions are constant.

/// `y ≈ [x, 1] · weights`: `weights` is `(in_dim + 1) x out_dim`, row-major, the bias in the last row.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearMap {
    pub in_dim: usize,
    pub out_dim: usize,
    pub weights: Vec<f32>,
}

/// Accumulates `XᵀX` and `XᵀY` one example at a time, so the examples need not all be held.
#[derive(Debug, Clone)]
pub struct NormalEquations {
    in_dim: usize,
    out_dim: usize,
    xtx: Vec<f64>,
    xty: Vec<f64>,
    count: usize,
}

/// Why the map could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegressionError {
    #[error("only {found} shared words: at least {needed} are needed to fit a {needed}-parameter map per output")]
    TooFewExamples { found: usize, needed: usize },
    #[error("the normal equations are singular: the word vectors do not span their space")]
    Singular,
}

impl NormalEquations {
    pub fn new(in_dim: usize, out_dim: usize) -> NormalEquations {
        let n = in_dim + 1;
        NormalEquations { in_dim, out_dim, xtx: vec![0.0; n * n], xty: vec![0.0; n * out_dim], count: 0 }
    }

    /// Adds one example.
    pub fn add(&mut self, x: &[f32], y: &[f32]) {
        let n = self.in_dim + 1;
        let value = |index: usize| if index < self.in_dim { f64::from(x[index]) } else { 1.0 };
        for row in 0..n {
            let xr = value(row);
            for column in row..n {
                self.xtx[row * n + column] += xr * value(column);
            }
            for (out, target) in y.iter().enumerate() {
                self.xty[row * self.out_dim + out] += xr * f64::from(*target);
            }
        }
        self.count += 1;
    }

    /// Solves for the least-squares map.
    pub fn solve(&self) -> Result<LinearMap, RegressionError> {
        let n = self.in_dim + 1;
        if self.count < n {
            return Err(RegressionError::TooFewExamples { found: self.count, needed: n });
        }
        let mut a = self.xtx.clone();
        for row in 0..n {
            for column in 0..row {
                a[row * n + column] = a[column * n + row];
            }
        }
        let ridge = 1e-8 * (0..n).map(|i| a[i * n + i]).sum::<f64>() / n as f64;
        for i in 0..n {
            a[i * n + i] += ridge;
        }
        // Cholesky: a = L Lᵀ, L stored in the lower triangle of `a`.
        for j in 0..n {
            let mut diagonal = a[j * n + j];
            for k in 0..j {
                diagonal -= a[j * n + k] * a[j * n + k];
            }
            if diagonal <= 0.0 || !diagonal.is_finite() {
                return Err(RegressionError::Singular);
            }
            let diagonal = diagonal.sqrt();
            a[j * n + j] = diagonal;
            for i in j + 1..n {
                let mut value = a[i * n + j];
                for k in 0..j {
                    value -= a[i * n + k] * a[j * n + k];
                }
                a[i * n + j] = value / diagonal;
            }
        }
        let mut weights = vec![0f32; n * self.out_dim];
        let mut column = vec![0f64; n];
        for out in 0..self.out_dim {
            // Forward substitution L z = b, then back substitution Lᵀ w = z.
            for i in 0..n {
                let mut value = self.xty[i * self.out_dim + out];
                for k in 0..i {
                    value -= a[i * n + k] * column[k];
                }
                column[i] = value / a[i * n + i];
            }
            for i in (0..n).rev() {
                let mut value = column[i];
                for k in i + 1..n {
                    value -= a[k * n + i] * column[k];
                }
                column[i] = value / a[i * n + i];
            }
            for i in 0..n {
                weights[i * self.out_dim + out] = column[i] as f32;
            }
        }
        Ok(LinearMap { in_dim: self.in_dim, out_dim: self.out_dim, weights })
    }
}

impl LinearMap {
    /// Maps `rows` inputs (`x`: `rows x in_dim`, row-major) into `out` (`rows x out_dim`).
    pub fn apply(&self, x: &[f32], rows: usize, out: &mut Vec<f32>) {
        assert_eq!(x.len(), rows * self.in_dim, "input shape");
        out.clear();
        for _ in 0..rows {
            out.extend_from_slice(&self.weights[self.in_dim * self.out_dim..]);
        }
        // SAFETY: the slices have the sizes the strides describe: x is rows x in_dim, weights' first
        // in_dim rows are in_dim x out_dim, out is rows x out_dim; all row-major.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                self.in_dim,
                self.out_dim,
                1.0,
                x.as_ptr(),
                self.in_dim as isize,
                1,
                self.weights.as_ptr(),
                self.out_dim as isize,
                1,
                1.0,
                out.as_mut_ptr(),
                self.out_dim as isize,
                1,
            );
        }
    }
}

/// Goodness of a fit, accumulated one example at a time.
#[derive(Debug, Clone, Default)]
pub struct FitQuality {
    residual: f64,
    sum: Vec<f64>,
    sum_squares: f64,
    cosine_sum: f64,
    count: usize,
}

impl FitQuality {
    /// Adds a prediction and its target.
    pub fn add(&mut self, predicted: &[f32], target: &[f32]) {
        if self.sum.is_empty() {
            self.sum = vec![0.0; target.len()];
        }
        let mut dot = 0.0;
        let (mut norm_p, mut norm_t) = (0.0, 0.0);
        for ((p, t), sum) in predicted.iter().zip(target).zip(&mut self.sum) {
            let (p, t) = (f64::from(*p), f64::from(*t));
            self.residual += (p - t) * (p - t);
            *sum += t;
            self.sum_squares += t * t;
            dot += p * t;
            norm_p += p * p;
            norm_t += t * t;
        }
        let denominator = (norm_p * norm_t).sqrt();
        self.cosine_sum += if denominator > 0.0 { dot / denominator } else { 0.0 };
        self.count += 1;
    }

    /// R² over all output dimensions: 1 - residual / total variance around each dimension's mean.
    pub fn r_squared(&self) -> f64 {
        let n = self.count.max(1) as f64;
        let total = self.sum_squares - self.sum.iter().map(|sum| sum * sum / n).sum::<f64>();
        if total <= 0.0 { 0.0 } else { 1.0 - self.residual / total }
    }

    /// Mean cosine similarity between predictions and targets.
    pub fn mean_cosine(&self) -> f64 {
        self.cosine_sum / self.count.max(1) as f64
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn recovers_a_known_linear_map() {
        let (in_dim, out_dim) = (20, 7);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let truth: Vec<f32> = (0..(in_dim + 1) * out_dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let map = LinearMap { in_dim, out_dim, weights: truth.clone() };
        let mut equations = NormalEquations::new(in_dim, out_dim);
        let mut examples = Vec::new();
        for _ in 0..500 {
            let x: Vec<f32> = (0..in_dim).map(|_| rng.random_range(-2.0..2.0)).collect();
            let mut y = Vec::new();
            map.apply(&x, 1, &mut y);
            let noisy: Vec<f32> = y.iter().map(|value| value + rng.random_range(-1e-3..1e-3)).collect();
            equations.add(&x, &noisy);
            examples.push((x, noisy));
        }
        let fitted = equations.solve().unwrap();
        for (a, b) in fitted.weights.iter().zip(&truth) {
            assert!((a - b).abs() < 1e-2, "{a} vs {b}");
        }
        let mut quality = FitQuality::default();
        let mut predicted = Vec::new();
        for (x, y) in &examples {
            fitted.apply(x, 1, &mut predicted);
            quality.add(&predicted, y);
        }
        assert!(quality.r_squared() > 0.999, "R² {}", quality.r_squared());
        assert!(quality.mean_cosine() > 0.999);
    }

    #[test]
    fn too_few_examples_are_refused() {
        let mut equations = NormalEquations::new(3, 2);
        equations.add(&[1.0, 2.0, 3.0], &[1.0, 1.0]);
        assert_eq!(equations.solve(), Err(RegressionError::TooFewExamples { found: 1, needed: 4 }));
    }

    #[test]
    fn batched_apply_matches_row_by_row() {
        let map = LinearMap { in_dim: 2, out_dim: 3, weights: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5, 0.5, 0.5] };
        let mut out = Vec::new();
        map.apply(&[1.0, 1.0, 2.0, 0.0], 2, &mut out);
        // Row 1: [1,1]·W + b = [5.5, 7.5, 9.5]; row 2: [2,0]·W + b = [2.5, 4.5, 6.5].
        assert_eq!(out, [5.5, 7.5, 9.5, 2.5, 4.5, 6.5]);
    }
}
