//! Content hashes recorded in manifests, so later stages can tell whether their inputs changed.

/// Hex BLAKE3 of `bytes` (fast enough to hash every input book on each run).
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}
