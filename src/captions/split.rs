//! Train / validation / test assignment by image, so that no image's captions straddle two splits. A pure
//! function of the image key: every stage (training, evaluation, the caption bank) agrees without a file.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Valid,
    Test,
}

/// The split of an image: `valid_percent` % of keys go to validation and `test_percent` % to test, chosen
/// by a hash of the key.
pub fn split_of(key: &str, valid_percent: u32, test_percent: u32) -> Split {
    let hash = blake3::hash(key.as_bytes());
    let bucket = u32::from_le_bytes(hash.as_bytes()[..4].try_into().expect("four bytes")) % 100;
    if bucket < test_percent {
        Split::Test
    } else if bucket < test_percent + valid_percent {
        Split::Valid
    } else {
        Split::Train
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportions_are_close_to_those_asked_and_stable() {
        let splits: Vec<Split> = (0..10_000).map(|index| split_of(&format!("coco:{index}"), 10, 20)).collect();
        let count = |split| splits.iter().filter(|&&s| s == split).count();
        assert!((800..1200).contains(&count(Split::Valid)));
        assert!((1700..2300).contains(&count(Split::Test)));
        assert_eq!(split_of("coco:5", 10, 20), splits[5]);
    }
}
