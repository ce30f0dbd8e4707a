//! Finding captions for pictures: a trained VSE loaded for inference (`trained`), embedding helpers
//! (`embed`), the caption bank (`bank`), features folders read as image-caption pairs (`data`), and
//! retrieval figures (`metrics`; `evaluate`: a VSE's recall on a split).

pub mod bank;
pub mod data;
pub mod embed;
pub mod evaluate;
pub mod metrics;
pub mod photo;
pub mod trained;

pub use bank::{BankError, CaptionBank};
pub use metrics::{RetrievalScores, evaluate_retrieval};
pub use trained::{TrainedVse, VseLoadError, VseManifest};
