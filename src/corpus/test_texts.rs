//! Random texts for the tests that check a fast scanner against a plain one.

/// `count` texts, each of fewer than `max_pieces` pieces drawn from `pieces`, the same for the same `seed`
/// (a linear congruential generator: the tests need variety, not statistical quality).
pub(crate) fn random_texts<'a>(
    pieces: &'a [&'a str],
    max_pieces: u64,
    count: usize,
    seed: u64,
) -> impl Iterator<Item = String> + 'a {
    let mut state = seed;
    (0..count).map(move |_| {
        let mut text = String::new();
        for _ in 0..(state % max_pieces) {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            text.push_str(pieces[(state >> 33) as usize % pieces.len()]);
        }
        text
    })
}
