//! The accept loop's limits on a real socket, with a trivial app (no models needed): a connection cap
//! answered 503 in JSON, a deadline for request headers, and a shutdown that ends within its deadline even
//! while a client holds a half-sent request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use storytool::serve::server::{ConnectionSettings, Stopped, serve};

struct Server {
    address: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<(Stopped, Duration)>>,
}

impl Server {
    fn start(settings: ConnectionSettings) -> Server {
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/upload", post(|body: axum::body::Bytes| async move { format!("{} bytes", body.len()) }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, address) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let result = runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready.send(listener.local_addr().unwrap()).unwrap();
                let mut asked = None;
                let shutdown = async {
                    let _ = stopped.await;
                    asked = Some(Instant::now());
                };
                let stopped = serve(listener, app, &settings, shutdown).await.unwrap();
                (stopped, asked.unwrap().elapsed())
            });
            runtime.shutdown_timeout(Duration::from_millis(100));
            result
        });
        Server { address: address.recv().unwrap(), stop: Some(stop), thread: Some(thread) }
    }

    fn stop(mut self) -> (Stopped, Duration) {
        self.stop.take().unwrap().send(()).unwrap();
        self.thread.take().unwrap().join().unwrap()
    }
}

fn get_root(address: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn connections_past_the_cap_get_a_json_503() {
    let server = Server::start(ConnectionSettings { max_connections: 2, ..ConnectionSettings::default() });
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(server.address).unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap(); // headers never finished
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let answer = get_root(server.address);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("{\"error\":\"too many connections"), "{answer}");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert!(get_root(server.address).ends_with("ok"));
    server.stop();
}

#[test]
fn half_sent_headers_are_dropped_after_the_header_deadline() {
    let server = Server::start(ConnectionSettings {
        header_timeout: Duration::from_millis(500),
        ..ConnectionSettings::default()
    });
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "held for {waited:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    server.stop();
}

#[test]
fn shutdown_ends_within_its_deadline_while_a_request_is_half_sent() {
    let server = Server::start(ConnectionSettings {
        shutdown_deadline: Duration::from_secs(1),
        header_timeout: Duration::from_secs(60),
        ..ConnectionSettings::default()
    });
    // Headers complete, body half sent: a request in flight that will never finish.
    let mut half = TcpStream::connect(server.address).unwrap();
    half.write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\nonly part").unwrap();
    // An idle kept-alive connection, and one with half its headers.
    let mut idle = TcpStream::connect(server.address).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut partial = TcpStream::connect(server.address).unwrap();
    partial.write_all(b"GET / HTTP/1.1\r\nhost:").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (stopped, took) = server.stop();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(matches!(stopped, Stopped::DeadlinePassed(_) | Stopped::Drained), "{stopped:?}");
}
