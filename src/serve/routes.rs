//! The router, its handlers and errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Multipart, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::pool::{Refused, WorkerPool};
use crate::config::GenerateConfig;
use crate::story::generate::{Generator, StoryInput, StoryOptions};
use crate::util::cancel::CancelFlag;
use crate::util::error_chain;
use crate::vision::{ImageError, decode_image_within};

const PAGE: &str = include_str!("page.html");
const PAGE_SCRIPT: &str = include_str!("page.js");
const PAGE_STYLE: &str = include_str!("page.css");
/// The page's script and style are files of their own, so the policy needs no `unsafe-inline`.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
/// The longest request target (path and query) and request head the routes accept; longer ones get 414 and
/// 431 as JSON. (Heads past `server::ConnectionSettings::max_head_bytes` are refused by hyper itself.)
pub const MAX_URI_BYTES: usize = 8 << 10;
pub const MAX_HEADER_BYTES: usize = 64 << 10;
pub const MAX_HEADERS: usize = 100;
const OPENAPI: &str = include_str!("openapi.json");

/// Limits and sizes of the service.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub workers: usize,
    pub queue: usize,
    pub timeout: Duration,
    pub max_body_bytes: usize,
    /// Largest beam a request may ask for.
    pub max_beam: usize,
    /// Time a client may stay silent while sending the request body.
    pub body_timeout: Duration,
    /// Most pixels an uploaded photo may declare: bounds each worker's memory (about 7 bytes a pixel).
    pub max_pixels: u64,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            workers: 2,
            queue: 8,
            timeout: Duration::from_secs(30),
            max_body_bytes: 10 << 20,
            max_beam: 20,
            body_timeout: Duration::from_secs(30),
            max_pixels: 24_000_000,
        }
    }
}

/// What every handler shares: the models (loaded once), the pool, the settings.
#[derive(Clone)]
pub struct ServeState {
    pub generator: Arc<Generator>,
    pub generate: GenerateConfig,
    pub pool: WorkerPool,
    pub settings: ServeSettings,
    /// Caption text by bank id, read once from the annotation files the bank names (may be empty).
    pub caption_texts: Arc<std::collections::HashMap<String, String>>,
    /// One permit per upload held in memory, from before its body is read until its job ends: at most
    /// `workers + queue`, so that many concurrent uploads cannot hold `max_body_bytes` each.
    pub uploads: Arc<tokio::sync::Semaphore>,
}

impl ServeState {
    /// The state of a server with its own worker pool and upload permits.
    pub fn new(
        generator: Arc<Generator>,
        generate: GenerateConfig,
        settings: ServeSettings,
        caption_texts: std::collections::HashMap<String, String>,
    ) -> ServeState {
        ServeState {
            generator,
            generate,
            pool: WorkerPool::new(settings.workers, settings.queue),
            uploads: Arc::new(tokio::sync::Semaphore::new(settings.workers.max(1) + settings.queue)),
            settings,
            caption_texts: Arc::new(caption_texts),
        }
    }
}

/// An error answer: a status and a message, always as JSON.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub fn router(state: ServeState) -> Router {
    let body_limit = state.settings.max_body_bytes;
    let body_timeout = state.settings.body_timeout;
    let security_header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(HeaderName::from_static(name), HeaderValue::from_static(value))
    };
    Router::new()
        .route("/", get(page))
        .route("/page.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], PAGE_SCRIPT) }))
        .route("/page.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], PAGE_STYLE) }))
        .route("/api/story", post(story))
        .route("/api/genres", get(genres))
        .route("/healthz", get(health))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }))
        .layer(security_header("content-security-policy", CONTENT_SECURITY_POLICY))
        .layer(security_header("x-content-type-options", "nosniff"))
        .layer(security_header("x-frame-options", "DENY"))
        .layer(security_header("referrer-policy", "no-referrer"))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Millis)),
        )
        .with_state(state)
}

/// Refuses over-long request targets and heads, and turns every error answer that is not JSON (405 from
/// the method router, 413 from the body limit, a bad multipart boundary...) into `{"error": ...}`.
async fn json_errors(request: Request, next: Next) -> Response {
    let target = request.uri().path_and_query().map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let head: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if head > MAX_HEADER_BYTES || request.headers().len() > MAX_HEADERS {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request headers are larger than {MAX_HEADER_BYTES} bytes or more than {MAX_HEADERS}"),
        )
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string());
    let message = match text {
        Ok(text) if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut answer = ApiError::new(status, message).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn genres(State(state): State<ServeState>) -> Json<serde_json::Value> {
    Json(json!({ "genres": state.generator.genres() }))
}

async fn health(State(state): State<ServeState>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "genres": state.generator.genres().len(), "pending": state.pool.pending() }))
}

/// The fields of a story request.
#[derive(Default)]
struct StoryForm {
    image: Option<Vec<u8>>,
    genre: Option<String>,
    beam: Option<usize>,
    seed: Option<u64>,
}

async fn read_form(mut multipart: Multipart) -> Result<StoryForm, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let mut form = StoryForm::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                return Err(ApiError::new(error.status(), format!("cannot read the upload: {}", error.body_text())));
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let read_error = |error: axum::extract::multipart::MultipartError| {
            ApiError::new(error.status(), format!("cannot read the field `{name}`: {}", error.body_text()))
        };
        match name.as_str() {
            "image" => form.image = Some(field.bytes().await.map_err(read_error)?.to_vec()),
            "genre" => form.genre = Some(field.text().await.map_err(read_error)?.trim().to_string()),
            "beam" => {
                let text = field.text().await.map_err(read_error)?;
                form.beam =
                    Some(text.trim().parse().map_err(|_| bad(format!("`beam` must be a whole number, not `{text}`")))?);
            }
            "seed" => {
                let text = field.text().await.map_err(read_error)?;
                form.seed =
                    Some(text.trim().parse().map_err(|_| bad(format!("`seed` must be a whole number, not `{text}`")))?);
            }
            _ => {} // unknown fields are ignored, as browsers may add their own
        }
    }
    Ok(form)
}

async fn story(State(state): State<ServeState>, multipart: Multipart) -> Result<Json<serde_json::Value>, ApiError> {
    let received = Instant::now();
    let busy = || ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "the server is busy; try again in a few seconds".into(),
        retry_after: Some(2),
    };
    // Taken before the body is read, given back when the job ends (it travels with the job).
    let upload = Arc::clone(&state.uploads).try_acquire_owned().map_err(|_| busy())?;
    let form = read_form(multipart).await?;
    let image = form.image.filter(|bytes| !bytes.is_empty()).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "missing the `image` field (a JPEG, PNG or WebP photo)")
    })?;
    let genre = form.genre.filter(|genre| !genre.is_empty()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("missing the `genre` field (one of: {})", state.generator.genres().join(", ")),
        )
    })?;
    if !state.generator.genres().contains(&genre) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown genre `{genre}`; known genres: {}", state.generator.genres().join(", ")),
        ));
    }
    let beam = form.beam.unwrap_or(state.generate.beam);
    if beam == 0 || beam > state.settings.max_beam {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("`beam` must be between 1 and {}", state.settings.max_beam),
        ));
    }
    let mut options = StoryOptions::new(&genre, &state.generate);
    options.beam = beam;
    options.fallback_beam = options.fallback_beam.min(state.settings.max_beam.max(beam));
    options.seed = form.seed.unwrap_or(0);

    let (sender, receiver) = tokio::sync::oneshot::channel();
    let generator = Arc::clone(&state.generator);
    // Set when this handler stops waiting: it timed out, or the client went away and the handler was
    // dropped. A queued job then never starts, and a running one stops at its next check.
    let cancel = CancelFlag::new();
    let _cancel_when_done = CancelOnDrop(cancel.clone());
    let max_pixels = state.settings.max_pixels;
    let submitted = state.pool.submit(move || {
        let _upload = upload;
        if cancel.is_cancelled() {
            return;
        }
        let started = Instant::now();
        let result = match decode_image_within(&image, "the uploaded image", max_pixels) {
            Ok(picture) => {
                generator.generate_cancellable(&StoryInput::Image(picture), &options, &cancel).map_err(|error| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("generation failed: {}", error_chain(&error)),
                    )
                })
            }
            Err(error @ ImageError::TooLarge { .. }) => {
                Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, error_chain(&error)))
            }
            Err(error) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error_chain(&error))),
        };
        let _ = sender.send((result, started.elapsed()));
    });
    match submitted {
        Ok(()) => {}
        Err(Refused::Full) => return Err(busy()),
        Err(Refused::Closed) => {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"));
        }
    }
    let waited = tokio::time::timeout(state.settings.timeout, receiver).await;
    let (result, work) = match waited {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
        Err(_) => {
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!("the story took longer than {} s", state.settings.timeout.as_secs()),
                retry_after: Some(5),
            });
        }
    };
    let story = result?;
    let texts = &state.caption_texts;
    let captions: Vec<serde_json::Value> = story
        .captions
        .iter()
        .take(5)
        .map(|caption| {
            // Written captions carry their text; retrieved ones are looked up by bank id.
            let text = caption.text.clone().or_else(|| caption.id.as_ref().and_then(|id| texts.get(id).cloned()));
            json!({ "id": caption.id, "score": caption.score, "text": text })
        })
        .collect();
    Ok(Json(json!({
        "story": story.story,
        "genre": story.genre,
        "captions": captions,
        "timings": {
            "queue_ms": (received.elapsed() - work).as_secs_f64() * 1e3,
            "generate_ms": story.timings.total_ms,
            "total_ms": received.elapsed().as_secs_f64() * 1e3,
        },
    })))
}

/// Cancels its flag when dropped: the end of a request handler, however it ends.
struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}
