//! `storytool serve`: the Pix2Story web app and its JSON API over one loaded [`Generator`].
//!
//! Routes: `GET /` (the upload page), `POST /api/story` (multipart `image`, `genre`, optional `beam`,
//! `seed`), `GET /api/genres`, `GET /healthz`, `GET /openapi.json`. Generation runs on a bounded
//! [`pool::WorkerPool`]; a full queue is a 503 with `Retry-After`, a request over its time a 503 too.
//! Limits: the body size, and the image's declared pixel count (checked before decoding; the format is
//! sniffed from the bytes, never taken from the upload's name or content type). Every error is JSON with a
//! message; a panic is caught and answered 500.

pub mod pool;
mod routes;

pub use routes::{ServeSettings, ServeState, router};
