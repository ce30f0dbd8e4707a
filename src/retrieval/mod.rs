//! Finding captions for pictures: a trained VSE loaded for inference (`trained`), embedding helpers
//! (`embed`), the caption bank (`bank`) and retrieval figures (`metrics`).

pub mod bank;
pub mod embed;
pub mod metrics;
pub mod photo;
pub mod trained;

pub use bank::{BankError, CaptionBank};
pub use metrics::{RetrievalScores, evaluate_retrieval};
pub use trained::{TrainedVse, VseLoadError, VseManifest};
