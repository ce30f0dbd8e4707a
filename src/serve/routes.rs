//! The router, its handlers and errors.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::UnboundedReceiver;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::pool::{Refused, WorkerPool};
use crate::config::GenerateConfig;
use crate::story::generate::{Generator, Story, StoryInput, StoryOptions, UsedCaption};
use crate::story::writer::StoryEvent;
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

    /// The answer when the worker pool or the upload permits are all taken.
    fn busy() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server is busy; try again in a few seconds".into(),
            retry_after: Some(2),
        }
    }

    /// As a stream's `error` event: the message and the status the JSON answer would have had.
    fn json(&self) -> serde_json::Value {
        json!({ "error": self.message, "status": self.status.as_u16() })
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
        .route("/story", post(story_form))
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
    // JSON, or the page answering a form post with its error.
    let is_answer = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json") || value.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_answer {
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

async fn page(State(state): State<ServeState>) -> Html<String> {
    Html(render_page(&state, None, None))
}

/// What the page shows below the form after a plain form post.
enum Outcome<'a> {
    Story(&'a Story),
    Error(&'a str),
}

/// The page with the genres in its picker (`selected` chosen) and, after a form post, the story or the
/// error: so that it works without JavaScript.
fn render_page(state: &ServeState, selected: Option<&str>, outcome: Option<Outcome<'_>>) -> String {
    let genres: String = state
        .generator
        .genres()
        .iter()
        .map(|genre| {
            let chosen = if Some(genre.as_str()) == selected { " selected" } else { "" };
            format!("<option value=\"{0}\"{chosen}>{0}</option>", escape_html(genre))
        })
        .collect();
    let (error, captions, keywords, story) = match &outcome {
        Some(Outcome::Story(story)) => {
            let captions: String = captions_json(state, &story.captions)
                .iter()
                .filter_map(|caption| caption["text"].as_str())
                .map(|text| format!("<li>{}</li>", escape_html(text)))
                .collect();
            (String::new(), captions, escape_html(&story.keywords.join(", ")), escape_html(&story.story))
        }
        Some(Outcome::Error(message)) => (escape_html(message), String::new(), String::new(), String::new()),
        None => Default::default(),
    };
    let seen_hidden = if matches!(outcome, Some(Outcome::Story(_))) { "" } else { " hidden" };
    fill(
        PAGE,
        &[
            ("genres", &genres),
            ("error", &error),
            ("seen_hidden", seen_hidden),
            ("captions", &captions),
            ("keywords", &keywords),
            ("story", &story),
        ],
    )
}

/// `template` with each `{{name}}` replaced by its value, in one pass: a value that holds `{{...}}` (a
/// story, a caption) is written as it is, never filled in turn.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut page = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        page.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after
            .find("}}")
            .and_then(|end| values.iter().find(|(name, _)| *name == &after[..end]).map(|v| (end, v.1)))
        {
            Some((end, value)) => {
                page.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                page.push_str("{{");
                rest = after;
            }
        }
    }
    page.push_str(rest);
    page
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `POST /story`: the form posted without JavaScript; the answer is the page with the story (or the error,
/// with its status).
async fn story_form(State(state): State<ServeState>, multipart: Multipart) -> Response {
    let started = prepare(&state, multipart).await.and_then(|job| {
        let genre = job.options.genre.clone();
        start(&state, job).map(|(receiver, guard)| (receiver, guard, genre))
    });
    let outcome = match started {
        Ok((receiver, guard, genre)) => {
            let _guard = guard;
            finished(&state, receiver).await.map(|(story, _)| (story, genre))
        }
        Err(error) => Err(error),
    };
    match outcome {
        Ok((story, genre)) => Html(render_page(&state, Some(&genre), Some(Outcome::Story(&story)))).into_response(),
        Err(error) => {
            let mut response =
                (error.status, Html(render_page(&state, None, Some(Outcome::Error(&error.message))))).into_response();
            if let Some(seconds) = error.retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
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

/// A story request that passed its checks: what its worker needs.
struct StoryJob {
    image: Vec<u8>,
    options: StoryOptions,
    /// Held from before the body was read until the job ends.
    upload: OwnedSemaphorePermit,
    received: Instant,
}

/// What a worker sends while it makes a story, in this order; `Done` last.
enum Made {
    Captions(Vec<UsedCaption>),
    /// Where each word of the written caption looked (a PNG), when the captions are written.
    Attention(Vec<u8>),
    Keywords(Vec<String>),
    Text(String),
    Done(Result<Story, ApiError>, Duration),
}

/// Reads and checks a story request (multipart `image`, `genre`, `beam`, `seed`).
async fn prepare(state: &ServeState, multipart: Multipart) -> Result<StoryJob, ApiError> {
    let received = Instant::now();
    // Taken before the body is read, given back when the job ends (it travels with the job).
    let upload = Arc::clone(&state.uploads).try_acquire_owned().map_err(|_| ApiError::busy())?;
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
    Ok(StoryJob { image, options, upload, received })
}

/// Queues `job` on the pool. What it makes arrives on the receiver; dropping the guard (the request's
/// handler or stream ends: answered, timed out, or its client gone) cancels it: a queued job never starts,
/// a running one stops at its next check.
fn start(state: &ServeState, job: StoryJob) -> Result<(UnboundedReceiver<Made>, CancelOnDrop), ApiError> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let generator = Arc::clone(&state.generator);
    let cancel = CancelFlag::new();
    let guard = CancelOnDrop(cancel.clone());
    let max_pixels = state.settings.max_pixels;
    let StoryJob { image, options, upload, .. } = job;
    let submitted = state.pool.submit(move || {
        let _upload = upload;
        if cancel.is_cancelled() {
            return;
        }
        let started = Instant::now();
        // Nobody left to send to: the client is gone, so is the reason to go on.
        let send = |made: Made| {
            if sender.send(made).is_err() {
                cancel.cancel();
            }
        };
        let result = match decode_image_within(&image, "the uploaded image", max_pixels) {
            Ok(picture) => {
                let input = StoryInput::Image(picture);
                let mut watch = |event: StoryEvent<'_>| match event {
                    StoryEvent::Captions(captions) => {
                        send(Made::Captions(captions.iter().take(SHOWN_CAPTIONS).cloned().collect()));
                        if let Some(png) = attention_png(&generator, &input, captions) {
                            send(Made::Attention(png));
                        }
                    }
                    StoryEvent::Keywords(keywords) => send(Made::Keywords(keywords.to_vec())),
                    StoryEvent::Text(text) => send(Made::Text(text.to_string())),
                };
                generator.generate_watched(&input, &options, &cancel, &mut watch).map_err(|error| {
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
        send(Made::Done(result, started.elapsed()));
    });
    match submitted {
        Ok(()) => Ok((receiver, guard)),
        Err(Refused::Full) => Err(ApiError::busy()),
        Err(Refused::Closed) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")),
    }
}

/// The attention picture of the best written caption, as PNG bytes; `None` for retrieved captions.
fn attention_png(generator: &Generator, input: &StoryInput, captions: &[UsedCaption]) -> Option<Vec<u8>> {
    let (StoryInput::Image(image), Some(captioner)) = (input, generator.photos.captioner()) else { return None };
    let best = captions.first().filter(|caption| caption.id.is_none())?.text.as_deref()?;
    let picture = captioner.attention_picture_of_text(image, best)?;
    let mut png = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut png, image::ImageFormat::Png).ok()?;
    Some(png.into_inner())
}

/// Captions a story answer shows.
const SHOWN_CAPTIONS: usize = 5;

fn timed_out(state: &ServeState) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!("the story took longer than {} s", state.settings.timeout.as_secs()),
        retry_after: Some(5),
    }
}

/// Waits for the finished story (what is made on the way is not shown), within the request's time.
async fn finished(state: &ServeState, mut receiver: UnboundedReceiver<Made>) -> Result<(Story, Duration), ApiError> {
    let done = async {
        while let Some(made) = receiver.recv().await {
            if let Made::Done(result, work) = made {
                return Some(result.map(|story| (story, work)));
            }
        }
        None
    };
    match tokio::time::timeout(state.settings.timeout, done).await {
        Ok(Some(result)) => result,
        Ok(None) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
        Err(_) => Err(timed_out(state)),
    }
}

/// `POST /api/story`: the story as JSON, or with `Accept: text/event-stream` as server-sent events while
/// it is made: `captions`, `keywords`, `text` (the story so far, each time it changes), then `story` (the
/// JSON answer) or `error` (`{"error", "status"}`). Requests refused before work starts get JSON errors.
async fn story(State(state): State<ServeState>, headers: HeaderMap, multipart: Multipart) -> Response {
    let streamed = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    let started = prepare(&state, multipart).await.and_then(|job| {
        let received = job.received;
        start(&state, job).map(|(receiver, guard)| (receiver, guard, received))
    });
    let (receiver, guard, received) = match started {
        Ok(started) => started,
        Err(error) => return error.into_response(),
    };
    if streamed {
        return stream_story(state, receiver, guard, received).into_response();
    }
    let _guard = guard;
    match finished(&state, receiver).await {
        Ok((story, work)) => Json(story_json(&state, &story, received, work)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The story's events as they come, until the story or an error; the request's time limit holds for the
/// whole stream. The guard lives in the stream: a client that leaves drops it, which stops the work.
fn stream_story(
    state: ServeState,
    receiver: UnboundedReceiver<Made>,
    guard: CancelOnDrop,
    received: Instant,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let deadline = tokio::time::Instant::now() + state.settings.timeout;
    let events = futures_util::stream::unfold(Some((receiver, guard, state)), move |context| async move {
        let (mut receiver, guard, state) = context?;
        let (name, data, more) = match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(Made::Captions(captions))) => {
                ("captions", json!({ "captions": captions_json(&state, &captions) }), true)
            }
            Ok(Some(Made::Attention(png))) => {
                ("attention", json!({ "png": base64::engine::general_purpose::STANDARD.encode(png) }), true)
            }
            Ok(Some(Made::Keywords(keywords))) => ("keywords", json!({ "keywords": keywords }), true),
            Ok(Some(Made::Text(text))) => ("text", json!({ "text": text }), true),
            Ok(Some(Made::Done(Ok(story), work))) => ("story", story_json(&state, &story, received, work), false),
            Ok(Some(Made::Done(Err(error), _))) => ("error", error.json(), false),
            Ok(None) => ("error", ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").json(), false),
            Err(_) => ("error", timed_out(&state).json(), false),
        };
        let event = Event::default().event(name).data(data.to_string());
        Some((Ok(event), more.then_some((receiver, guard, state))))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The first captions as the answers show them: text looked up by bank id for retrieved ones.
fn captions_json(state: &ServeState, captions: &[UsedCaption]) -> Vec<serde_json::Value> {
    captions
        .iter()
        .take(SHOWN_CAPTIONS)
        .map(|caption| {
            let text = caption
                .text
                .clone()
                .or_else(|| caption.id.as_ref().and_then(|id| state.caption_texts.get(id).cloned()));
            json!({ "id": caption.id, "score": caption.score, "text": text })
        })
        .collect()
}

/// The JSON answer of a finished story.
fn story_json(state: &ServeState, story: &Story, received: Instant, work: Duration) -> serde_json::Value {
    json!({
        "story": story.story,
        "genre": story.genre,
        "captions": captions_json(state, &story.captions),
        "keywords": story.keywords,
        "timings": {
            "queue_ms": (received.elapsed().saturating_sub(work)).as_secs_f64() * 1e3,
            "generate_ms": story.timings.total_ms,
            "total_ms": received.elapsed().as_secs_f64() * 1e3,
        },
    })
}

/// Cancels its flag when dropped: the end of a request handler, however it ends.
struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn the_page_is_filled_in_one_pass() {
        let page = fill(
            "<p>{{error}}</p><div>{{story}}</div>{{unknown}}",
            &[("error", "no {{story}} here"), ("story", "It rained.")],
        );
        assert_eq!(page, "<p>no {{story}} here</p><div>It rained.</div>{{unknown}}");
    }
}
