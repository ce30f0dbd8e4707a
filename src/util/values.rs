//! A float tensor's values on the host, in one place instead of a conversion and an `expect` at every call.

use burn::tensor::Tensor;

/// The values of `tensor`, row-major, as `f32`, converted from whatever float type it holds (the CPU
/// backend computes in f32, so this is usually a copy).
///
/// # Panics
/// If the backend cannot read the tensor back to the host: a broken device, which no caller can recover from.
pub fn f32_values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_into_vec_as::<f32>().expect("a float tensor reads back as f32")
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    #[test]
    fn values_come_back_row_major() {
        let tensor = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]), &Device::flex());
        assert_eq!(f32_values(tensor.transpose()), [1.0, 3.0, 2.0, 4.0]);
    }
}
