//! `storytool serve`: the Pix2Story web app and its JSON API over one loaded [`Generator`].
//!
//! Routes: `GET /` (the upload page), `POST /api/story` (multipart `image`, `genre`, optional `beam`,
//! `seed`; JSON, or with `Accept: text/event-stream` the captions, keywords and the story as it is
//! written as server-sent events, then the JSON answer), `POST /story` (the same form posted without
//! JavaScript: the page with the story), `GET /api/genres`, `GET /healthz`, `GET /openapi.json`. Generation runs on a bounded
//! [`pool::WorkerPool`]; a full queue is a 503 with `Retry-After`, a request over its time a 503 too.
//! Limits: the body size and the time to send it, the request head's size, the image's declared pixel
//! count and shape (checked before decoding; the format is sniffed from the bytes, never taken from the
//! upload's name or content type); [`server`] caps connections and the time to send headers. A request
//! whose client is gone or timed out stops its work. Every error is JSON with a message; a panic is caught
//! and answered 500. Every answer carries a content security policy and no-sniff and no-framing headers.

pub mod pool;
mod routes;
pub mod server;

pub use routes::{ServeSettings, ServeState, router};
