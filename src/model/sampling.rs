//! Sampling the next token from a row of log-probabilities: temperature and nucleus (top-p) sampling
//! (Holtzman et al. 2020), from a seeded generator so that a seed gives the same story every time.
//!
//! Beam search (`beam`) finds likely texts, which for a language model means bland and repetitive ones; a
//! pretrained model writes more like a person when sampled from the smallest set of tokens that holds `p`
//! of the probability.

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingSettings {
    /// Divides the log-probabilities before sampling; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Sample among the most likely tokens whose probabilities add up to at least this (1: all).
    pub top_p: f32,
}

/// The token drawn from `log_probs` (any finite scores; `-inf` marks a forbidden token). `None` when every
/// token is forbidden.
pub fn sample(log_probs: &[f32], settings: SamplingSettings, rng: &mut impl Rng) -> Option<u32> {
    let mut candidates: Vec<(u32, f32)> = log_probs
        .iter()
        .enumerate()
        .filter(|(_, score)| score.is_finite())
        .map(|(id, &score)| (id as u32, score))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    if settings.temperature <= 0.0 {
        return candidates.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|&(id, _)| id);
    }
    candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    let top = candidates[0].1;
    let mut weights: Vec<f64> =
        candidates.iter().map(|&(_, score)| f64::from((score - top) / settings.temperature).exp()).collect();
    let total: f64 = weights.iter().sum();
    // The nucleus: the fewest most likely tokens holding `top_p` of the mass (always at least one).
    let mut kept = 0;
    let mut mass = 0.0;
    while kept < weights.len() && (kept == 0 || mass < f64::from(settings.top_p) * total) {
        mass += weights[kept];
        kept += 1;
    }
    weights.truncate(kept);
    let mut draw = rng.random::<f64>() * mass;
    for (index, weight) in weights.iter().enumerate() {
        if draw < *weight {
            return Some(candidates[index].0);
        }
        draw -= weight;
    }
    Some(candidates[kept - 1].0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn greedy_takes_the_best_and_skips_forbidden_tokens() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let greedy = SamplingSettings { temperature: 0.0, top_p: 1.0 };
        assert_eq!(sample(&[-1.0, f32::NEG_INFINITY, -0.5, -3.0], greedy, &mut rng), Some(2));
        assert_eq!(sample(&[f32::NEG_INFINITY; 3], greedy, &mut rng), None);
    }

    #[test]
    fn the_nucleus_holds_only_the_likely_tokens_and_draws_them_by_probability() {
        // Probabilities 0.5, 0.3, 0.15, 0.05: top-p 0.7 keeps the first two (0.8 of the mass), drawn 5:3.
        let log_probs: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
        let settings = SamplingSettings { temperature: 1.0, top_p: 0.7 };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0usize; 4];
        for _ in 0..20_000 {
            counts[sample(&log_probs, settings, &mut rng).unwrap() as usize] += 1;
        }
        assert_eq!(counts[2] + counts[3], 0, "{counts:?}");
        let share = counts[0] as f64 / 20_000.0;
        assert!((share - 0.625).abs() < 0.015, "{counts:?}");
    }

    #[test]
    fn a_seed_gives_the_same_draws() {
        let log_probs: Vec<f32> = (0..50).map(|i| -(i as f32) * 0.1).collect();
        let settings = SamplingSettings { temperature: 0.8, top_p: 0.95 };
        let draws = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20).map(|_| sample(&log_probs, settings, &mut rng).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert_ne!(draws(3), draws(4));
    }
}
