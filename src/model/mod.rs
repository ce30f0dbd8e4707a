//! burn modules, and what every model's forward pass and search share (`batch`: padded id arrays; `beam`:
//! beam search over any word-by-word scorer). Models never read files: loading and saving live with the
//! artifact modules that own them.

pub mod adaptive_softmax;
pub mod batch;
pub mod beam;
pub mod blas;
pub mod captioner;
pub mod cpu_tensor;
pub mod gru;
pub mod gru_kernel;
pub mod llama;
pub mod lm_steering;
pub mod output_loss;
pub mod packed;
pub mod sampling;
pub mod skip_thought;
pub mod story_decoder;
pub mod vse;
