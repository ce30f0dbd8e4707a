//! Pictures: decoding and preprocessing, and the EfficientNet-Lite network that turns them into features.

pub mod efficientnet;
pub mod preprocess;

pub use efficientnet::{EfficientNet, EfficientNetOutput, ImportError};
pub use preprocess::{ImageError, decode_image, load_image, preprocess};
