//! The CPU backend's tensors as plain `f32` slices and back, for the kernels that compute outside burn's
//! operations ([`super::gru`], [`super::output_loss`]).

use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, TensorData};

/// Reads a CPU-backend tensor's values in row-major order (a copy only when it is not contiguous).
pub fn with_f32<R>(tensor: &FlexTensor, read: impl FnOnce(&[f32]) -> R) -> R {
    match tensor.as_slice::<f32>() {
        Some(values) => read(values),
        None => read(tensor.to_contiguous().as_slice::<f32>().expect("a contiguous f32 tensor")),
    }
}

/// A CPU-backend tensor owning `values` (no copy).
pub fn flex(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}
