//! The web API through its router, on models trained for a few steps on fixtures: a story for a photo;
//! JSON errors for what users send wrong; 503 with Retry-After when the queue is full.

mod support;

use burn::tensor::Device;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use storytool::config::GenerateConfig;
use storytool::serve::{ServeSettings, ServeState, router};
use storytool::story::generate::{Generator, ModelPaths};
use tower::ServiceExt;

const BOUNDARY: &str = "storytool-test-boundary";

/// The fixture models (trained for a few steps under `root`), loaded for photos.
fn fixture_generator(root: &std::path::Path) -> Generator {
    let models = tokio::task::block_in_place(|| support::models(root));
    Generator::load(&ModelPaths::from_dir(&models, models.join("cnn.pth")), true, &Device::flex())
        .expect("fixture models load")
}

/// A multipart body of (name, optional file name, bytes).
fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, bytes) in fields {
        body.extend(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(file) => body.extend(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: image/jpeg\r\n\r\n")
                    .as_bytes(),
            ),
            None => body.extend(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend(*bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn story_request(fields: &[(&str, Option<&str>, &[u8])]) -> Request<Body> {
    Request::post("/api/story")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(multipart(fields)))
        .unwrap()
}

async fn answer(app: &axum::Router, request: Request<Body>) -> (StatusCode, serde_json::Value, Option<String>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry = response.headers().get(header::RETRY_AFTER).map(|value| value.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json, retry)
}

/// A PNG whose header declares 100,000 x 100,000 pixels (a decompression bomb's shape).
fn huge_png() -> Vec<u8> {
    let small = image::RgbImage::new(1, 1);
    let mut bytes = Vec::new();
    small.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    // IHDR data starts at byte 16: width and height, big-endian; the chunk's CRC (type + data) follows it.
    bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// PNG's CRC-32 (polynomial 0xEDB88320), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_writes_stories_and_refuses_bad_requests_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let generator = fixture_generator(dir.path());
    let settings = ServeSettings { workers: 1, queue: 1, timeout: Duration::from_secs(20), ..ServeSettings::default() };
    let mut generate = GenerateConfig::default();
    generate.k = 3;
    let generator = Arc::new(generator);
    let state = ServeState::new(Arc::clone(&generator), generate, settings, Default::default());
    let pool = state.pool.clone();
    let app = router(state);
    // A real photo (the models are fixtures, the picture is not).
    let photo = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/samples/coffee.png")).unwrap();

    let (status, json, _) =
        answer(&app, story_request(&[("image", Some("a.jpg"), &photo), ("genre", None, b"adventure")])).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(json["story"].as_str().unwrap().split_whitespace().count() >= 15, "{json}");
    assert_eq!(json["genre"], "adventure");
    assert_eq!(json["captions"].as_array().unwrap().len(), 3);
    assert!(json["timings"]["total_ms"].as_f64().unwrap() > 0.0);

    let (status, json, _) = answer(&app, Request::get("/api/genres").body(Body::empty()).unwrap()).await;
    assert_eq!((status, json["genres"].clone()), (StatusCode::OK, serde_json::json!(["adventure", "sci-fi"])));
    let (status, _, _) = answer(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, json, _) = answer(&app, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!((status, json["openapi"].as_str()), (StatusCode::OK, Some("3.0.3")));

    let mut truncated = Vec::new();
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 9]))
        .write_to(&mut std::io::Cursor::new(&mut truncated), image::ImageFormat::Jpeg)
        .unwrap();
    truncated.truncate(truncated.len() / 3);
    let huge = huge_png();
    let hostile =
        |name: &str| std::fs::read(format!("{}/tests/fixtures/hostile/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let (wide, tall) = (hostile("wide.png"), hostile("tall.png"));
    let mut slightly_cut = Vec::new();
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 9]))
        .write_to(&mut std::io::Cursor::new(&mut slightly_cut), image::ImageFormat::Jpeg)
        .unwrap();
    slightly_cut.truncate(slightly_cut.len() - 30);
    let cases: [(&[(&str, Option<&str>, &[u8])], StatusCode, &str); 9] = [
        (
            &[("image", Some("wide.png"), &wide), ("genre", None, b"adventure")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "100000x1",
        ),
        (
            &[("image", Some("tall.png"), &tall), ("genre", None, b"adventure")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "1x20000",
        ),
        (
            &[("image", Some("cut.jpg"), &slightly_cut), ("genre", None, b"adventure")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "truncated",
        ),
        (
            &[("image", Some("a.jpg"), b"plain text, not a picture"), ("genre", None, b"adventure")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "not an image",
        ),
        (
            &[("image", Some("a.jpg"), &truncated), ("genre", None, b"adventure")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "JPEG",
        ),
        (
            &[("image", Some("a.png"), &huge), ("genre", None, b"adventure")],
            StatusCode::PAYLOAD_TOO_LARGE,
            "100000x100000",
        ),
        (
            &[("image", Some("a.jpg"), &photo), ("genre", None, b"western")],
            StatusCode::BAD_REQUEST,
            "adventure, sci-fi",
        ),
        (&[("genre", None, b"adventure")], StatusCode::BAD_REQUEST, "missing the `image`"),
        (&[("image", Some("a.jpg"), &photo)], StatusCode::BAD_REQUEST, "missing the `genre`"),
    ];
    for (fields, expected, words) in cases {
        let (status, json, _) = answer(&app, story_request(fields)).await;
        let message = json["error"].as_str().unwrap_or_default();
        assert_eq!(status, expected, "{json}");
        assert!(message.contains(words), "expected `{words}` in `{message}`");
    }
    let (status, json, _) = answer(
        &app,
        story_request(&[("image", Some("a.jpg"), &photo), ("genre", None, b"adventure"), ("beam", None, b"many")]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");

    // Fill the pool (one worker busy, one job waiting): the next request is refused, not queued. (A worker
    // counts its job done just after sending the answer: wait for the count to settle first.)
    while pool.pending() != 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let gate = Arc::new(Barrier::new(2));
    let held = Arc::clone(&gate);
    pool.submit(move || {
        held.wait();
    })
    .unwrap();
    pool.submit(|| {}).unwrap();
    let (status, json, retry) =
        answer(&app, story_request(&[("image", Some("a.jpg"), &photo), ("genre", None, b"adventure")])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(retry.as_deref(), Some("2"));
    assert!(json["error"].as_str().unwrap().contains("busy"));
    tokio::task::block_in_place(|| gate.wait());

    // A story whose request was given up on stops at once.
    let cancel = storytool::util::cancel::CancelFlag::new();
    cancel.cancel();
    let options = storytool::story::generate::StoryOptions::new("adventure", &GenerateConfig::default());
    let input = storytool::story::generate::StoryInput::Captions(vec!["It was at night.".into()]);
    let stopped = tokio::task::block_in_place(|| generator.generate_cancellable(&input, &options, &cancel));
    assert!(matches!(stopped, Err(storytool::story::generate::GenerateError::Interrupted(_))), "{stopped:?}");
}

/// Errors that do not come from the story handler are JSON too, and every answer carries the security
/// headers; random and damaged multipart bodies never get a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_with_security_headers_and_multipart_never_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let generator = fixture_generator(dir.path());
    let settings = ServeSettings { workers: 1, queue: 64, max_body_bytes: 1 << 16, ..ServeSettings::default() };
    let app = router(ServeState::new(Arc::new(generator), GenerateConfig::default(), settings, Default::default()));

    let page = app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
    for (name, value) in [("x-content-type-options", "nosniff"), ("x-frame-options", "DENY")] {
        assert_eq!(page.headers().get(name).and_then(|v| v.to_str().ok()), Some(value), "{name}");
    }
    let policy = page.headers().get("content-security-policy").unwrap().to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && !policy.contains("unsafe-inline"), "{policy}");
    let (status, _, _) = answer(&app, Request::get("/page.js").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    let long_target = format!("/api/genres?{}", "a".repeat(20_000));
    let mut many_headers = Request::get("/api/genres");
    for index in 0..150 {
        many_headers = many_headers.header(format!("x-h{index}"), "v");
    }
    let cases = [
        (Request::get("/api/story").body(Body::empty()).unwrap(), StatusCode::METHOD_NOT_ALLOWED),
        (Request::get(long_target.as_str()).body(Body::empty()).unwrap(), StatusCode::URI_TOO_LONG),
        (many_headers.body(Body::empty()).unwrap(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        (
            Request::post("/api/story")
                .header(header::CONTENT_TYPE, "multipart/form-data; boundary=")
                .body(Body::from("--\r\n"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Request::post("/api/story")
                .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
                .body(Body::from(vec![b'x'; 1 << 17]))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (request, expected) in cases {
        let what = format!("{} {}", request.method(), request.uri().path());
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), expected, "{what}");
        assert!(response.headers().contains_key("content-security-policy"), "{what}");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{what}: {bytes:?}"));
        assert!(json["error"].as_str().is_some_and(|message| !message.is_empty()), "{what}: {json}");
    }

    // Random bodies and damaged valid ones: always a JSON answer, never a 500.
    let photo = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/samples/coffee.png")).unwrap();
    let valid =
        multipart(&[("image", Some("a.png"), &photo[..2000]), ("genre", None, b"adventure"), ("beam", None, b"2")]);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for case in 0..300 {
        let mut body = if case % 3 == 0 { (0..next() % 512).map(|_| next() as u8).collect() } else { valid.clone() };
        for _ in 0..(next() % 6) {
            if body.is_empty() {
                break;
            }
            let at = (next() as usize) % body.len();
            match next() % 3 {
                0 => body[at] = next() as u8,
                1 => body.truncate(at),
                _ => body.insert(at, next() as u8),
            }
        }
        let response = app.clone().oneshot(story_request_bytes(body.clone())).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "case {case}: {}", String::from_utf8_lossy(&bytes));
        let json: Result<serde_json::Value, _> = serde_json::from_slice(&bytes);
        assert!(json.is_ok(), "case {case}: {status} {}", String::from_utf8_lossy(&bytes));
    }
}

fn story_request_bytes(body: Vec<u8>) -> Request<Body> {
    Request::post("/api/story")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(body))
        .unwrap()
}

/// The server-sent events of a body: (event name, JSON data), keep-alive comments left out.
fn parse_events(text: &str) -> Vec<(String, serde_json::Value)> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|block| !block.trim().is_empty() && !block.starts_with(':'))
        .map(|block| {
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_string();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            (name, serde_json::from_str(&data).unwrap_or(serde_json::Value::Null))
        })
        .collect()
}

fn streamed(request: Request<Body>) -> Request<Body> {
    let mut request = request;
    request.headers_mut().insert(header::ACCEPT, "text/event-stream".parse().unwrap());
    request
}

/// A streamed story: captions, keywords, the text growing, then the same story the JSON answer gives; a
/// client that leaves mid-story frees its worker long before the story would have ended; and the page
/// works as a plain form post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_story_shows_its_captions_first_then_grows_and_a_client_that_leaves_frees_its_worker() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let generator = fixture_generator(dir.path());
    let generator = Arc::new(generator);
    let settings = ServeSettings { workers: 1, queue: 1, timeout: Duration::from_secs(60), ..ServeSettings::default() };
    let mut generate = GenerateConfig::default();
    generate.k = 3;
    let state = ServeState::new(Arc::clone(&generator), generate.clone(), settings.clone(), Default::default());
    let app = router(state);
    let photo = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/samples/coffee.png")).unwrap();
    let fields: &[(&str, Option<&str>, &[u8])] = &[("image", Some("a.png"), &photo), ("genre", None, b"sci-fi")];

    let response = app.clone().oneshot(streamed(story_request(fields))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let events = parse_events(&String::from_utf8_lossy(&body));
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names[..2], ["captions", "keywords"], "{names:?}");
    assert_eq!(names.last(), Some(&"story"), "{names:?}");
    assert_eq!(events[0].1["captions"].as_array().unwrap().len(), 3);
    let texts: Vec<&str> =
        events.iter().filter(|(name, _)| name == "text").map(|(_, data)| data["text"].as_str().unwrap()).collect();
    assert!(texts.len() >= 2, "the story grows in steps: {texts:?}");
    assert!(texts.windows(2).all(|pair| pair[1].len() > pair[0].len()), "{texts:?}");
    let streamed_story = events.last().unwrap().1["story"].as_str().unwrap().to_string();
    let first_word = texts[0].split_whitespace().next().unwrap();
    assert!(streamed_story.starts_with(first_word), "{first_word} / {streamed_story}");
    let (status, json, _) = answer(&app, story_request(fields)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["story"].as_str().unwrap(), streamed_story, "the same story either way");

    // A refused request is a JSON error before any event.
    let response = app
        .clone()
        .oneshot(streamed(story_request(&[("image", Some("a.png"), &photo), ("genre", None, b"western")])))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Long stories: the whole one, then one whose client leaves after its first words.
    let mut long = generate.clone();
    (long.min_words, long.max_words, long.beam) = (900, 1000, 20);
    let state = ServeState::new(Arc::clone(&generator), long, settings, Default::default());
    let pool = state.pool.clone();
    let app = router(state);
    let started = std::time::Instant::now();
    let response = app.clone().oneshot(streamed(story_request(fields))).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
    let whole = started.elapsed();
    assert_eq!(parse_events(&String::from_utf8_lossy(&body)).last().unwrap().0, "story");
    while pool.pending() != 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = std::time::Instant::now();
    let response = app.clone().oneshot(streamed(story_request(fields))).await.unwrap();
    let mut body = response.into_body().into_data_stream();
    let mut seen = String::new();
    while !seen.contains("event: text") {
        seen.push_str(&String::from_utf8_lossy(&body.next().await.unwrap().unwrap()));
    }
    let first_words = started.elapsed();
    drop(body);
    while pool.pending() != 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let freed = started.elapsed();
    eprintln!("whole story {whole:?}; first words {first_words:?}; worker free {freed:?} after the request");
    // Counted from the first words, which the stream waits for: the rest of the story is the work saved.
    let (left, rest) = (freed.saturating_sub(first_words), whole.saturating_sub(first_words));
    assert!(left * 4 < rest, "the worker went on {left:?} after the client left; the story takes {rest:?} more whole");

    // Without JavaScript: the page lists the genres, and a form post answers with the page and the story.
    let response = app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
    let page =
        String::from_utf8_lossy(&axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()).into_owned();
    assert!(page.contains(r#"<option value="adventure">adventure</option>"#), "{page}");
    assert!(page.contains(r#"action="/story""#));
    let mut form = story_request(&[("image", Some("a.png"), &photo), ("genre", None, b"adventure")]);
    *form.uri_mut() = "/story".parse().unwrap();
    let response = app.clone().oneshot(form).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page =
        String::from_utf8_lossy(&axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()).into_owned();
    assert!(page.contains(r#"<option value="adventure" selected>"#), "{page}");
    let story = page.split(r#"<div id="story" aria-live="polite">"#).nth(1).unwrap().split("</div>").next().unwrap();
    assert!(story.split_whitespace().count() >= 15, "{story}");
    let mut form = story_request(&[("genre", None, b"adventure")]);
    *form.uri_mut() = "/story".parse().unwrap();
    let response = app.clone().oneshot(form).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page =
        String::from_utf8_lossy(&axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()).into_owned();
    assert!(page.contains("missing the `image` field"), "{page}");
}
