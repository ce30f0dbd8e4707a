//! The router, its handlers and errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::pool::{Refused, WorkerPool};
use crate::config::GenerateConfig;
use crate::story::generate::{Generator, StoryInput, StoryOptions};
use crate::vision::{ImageError, decode_image};

const PAGE: &str = include_str!("page.html");
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
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings { workers: 2, queue: 8, timeout: Duration::from_secs(30), max_body_bytes: 10 << 20, max_beam: 20 }
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
    Router::new()
        .route("/", get(page))
        .route("/api/story", post(story))
        .route("/api/genres", get(genres))
        .route("/healthz", get(health))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Millis)),
        )
        .with_state(state)
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
    let submitted = state.pool.submit(move || {
        let started = Instant::now();
        let result = match decode_image(&image, "the uploaded image") {
            Ok(picture) => generator.generate(&StoryInput::Image(picture), &options).map_err(|error| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("generation failed: {error}"))
            }),
            Err(error @ ImageError::TooLarge { .. }) => {
                Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string()))
            }
            Err(error) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())),
        };
        let _ = sender.send((result, started.elapsed()));
    });
    match submitted {
        Ok(()) => {}
        Err(Refused::Full) => {
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "the server is busy; try again in a few seconds".into(),
                retry_after: Some(2),
            });
        }
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
