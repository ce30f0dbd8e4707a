//! The web API through its router, on models trained for a few steps on fixtures: a story for a photo;
//! JSON errors for what users send wrong; 503 with Retry-After when the queue is full.

mod support;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use storytool::config::GenerateConfig;
use storytool::serve::pool::WorkerPool;
use storytool::serve::{ServeSettings, ServeState, router};
use storytool::story::generate::{Generator, ModelPaths};
use tower::ServiceExt;

const BOUNDARY: &str = "storytool-test-boundary";

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
    let models = tokio::task::block_in_place(|| support::models(dir.path()));
    let generator =
        Generator::load(&ModelPaths::from_dir(&models, models.join("cnn.pth")), true).expect("fixture models load");
    let settings = ServeSettings { workers: 1, queue: 1, timeout: Duration::from_secs(20), ..ServeSettings::default() };
    let mut generate = GenerateConfig::default();
    generate.k = 3;
    let pool = WorkerPool::new(settings.workers, settings.queue);
    let state = ServeState {
        generator: Arc::new(generator),
        generate,
        pool: pool.clone(),
        settings,
        caption_texts: Arc::new(Default::default()),
    };
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
    let cases: [(&[(&str, Option<&str>, &[u8])], StatusCode, &str); 6] = [
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
}
