//! The HTTP/1 accept loop: at most `max_connections` at once (more are answered 503 and closed), a
//! deadline for each request's headers, and a shutdown that finishes the requests in flight but never waits
//! longer than `shutdown_deadline`, dropping idle and half-sent connections.
//!
//! `axum::serve` offers none of these limits, so connections are served by hyper directly: a client that
//! opens a thousand connections and sends half a request on each would otherwise hold them (and the memory
//! behind them) for as long as it likes, and keep the server from stopping on SIGTERM.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits on connections.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Connections served at once; the next ones get a 503 and are closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (also between requests on a kept-alive connection).
    pub header_timeout: Duration,
    /// The longest a shutdown waits for requests in flight.
    pub shutdown_deadline: Duration,
    /// Bytes of a request's head hyper buffers; the routes refuse smaller heads with JSON answers first.
    pub max_head_bytes: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            shutdown_deadline: Duration::from_secs(10),
            max_head_bytes: 256 << 10,
        }
    }
}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection finished its request within the deadline.
    Drained,
    /// The deadline passed; this many connections were dropped.
    DeadlinePassed(usize),
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 2\r\nconnection: close\r\ncontent-length: 56\r\n\r\n{\"error\":\"too many connections; try again in a moment\"}\n";

/// Serves `app` on `listener` until `shutdown` completes, then drains within the deadline.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &ConnectionSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<Stopped> {
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .max_buf_size(settings.max_head_bytes.max(8192));
    tokio::pin!(shutdown);
    loop {
        let (mut stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait a moment rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
            });
            continue;
        };
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => Ok(Stopped::Drained),
        () = tokio::time::sleep(settings.shutdown_deadline) => {
            Ok(Stopped::DeadlinePassed(settings.max_connections.max(1) - slots.available_permits()))
        }
    }
}
