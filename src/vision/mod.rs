//! Pictures: decoding and preprocessing, and the EfficientNet-Lite network that turns them into features.

pub mod efficientnet;
pub mod jpeg;
pub mod preprocess;

pub use efficientnet::{EfficientNet, EfficientNetOutput, ImportError};
pub use preprocess::{ImageError, decode_image, decode_image_within, load_image, preprocess};
