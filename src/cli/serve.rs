//! `storytool serve`: the web app and JSON API.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use storytool::serve::server::{ConnectionSettings, Stopped, serve};
use storytool::serve::{ServeSettings, ServeState, router};
use storytool::story::generate::{Generator, ModelPaths};

use super::device_args::DeviceArgs;
use super::{ConfigArgs, cnn_weights};

/// Serve the Pix2Story web app: an upload page at `/`, `POST /api/story` (multipart `image`, `genre`,
/// optional `beam`, `seed`) answering `{story, genre, captions, timings}`, `GET /api/genres`, `GET /healthz`
/// and `GET /openapi.json`. Models are loaded once; stories are written by a bounded pool of workers and a
/// full queue answers 503 with Retry-After. Logs one line per request (`RUST_LOG` sets the level).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Model folder with encoder/, decoder/, bias/, vse/ and caption-bank/
    #[arg(long, value_name = "DIR", default_value = "checkpoints/demo")]
    models: PathBuf,

    /// Captioner folder: write each photo's captions instead of retrieving them (as `generate --captioner`)
    #[arg(long, value_name = "DIR")]
    captioner: Option<PathBuf>,

    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,

    /// A story decoder folder to use instead of the model folder's `decoder/` (e.g.
    /// `checkpoints/demo/decoder-gru`, the GRU decoder)
    #[arg(long, value_name = "DIR")]
    decoder: Option<PathBuf>,

    /// The pretrained language model a `kind = "lm"` decoder steers (default: $STORYTOOL_LM_WEIGHTS, then
    /// the file scripts/fetch-lm.sh fetches)
    #[arg(long, value_name = "GGUF")]
    lm: Option<PathBuf>,

    /// EfficientNet-Lite weights (default: $STORYTOOL_CNN_WEIGHTS or the file scripts/fetch-cnn.sh fetched)
    #[arg(long, value_name = "FILE")]
    cnn: Option<PathBuf>,

    /// Stories written at once (default: one per core)
    #[arg(long)]
    workers: Option<usize>,

    /// Requests that may wait for a worker before new ones get 503
    #[arg(long, default_value_t = 8)]
    queue: usize,

    /// Seconds a request may take before it gets 503
    #[arg(long, default_value_t = 30)]
    timeout: u64,

    /// Largest upload in megabytes
    #[arg(long, default_value_t = 10)]
    max_upload_mb: usize,

    /// Most megapixels an uploaded photo may have (a worker needs about 7 bytes a pixel to read it)
    #[arg(long, default_value_t = 24.0)]
    max_megapixels: f64,

    /// Connections served at once; more are answered 503 and closed
    #[arg(long, default_value_t = 256)]
    max_connections: usize,

    /// Seconds a client has to send a request's headers, and may stay silent while sending its body
    #[arg(long, default_value_t = 10)]
    read_timeout: u64,

    /// Seconds a shutdown (SIGTERM, Ctrl-C) waits for requests in flight before dropping them
    #[arg(long, default_value_t = 10)]
    shutdown_timeout: u64,

    #[command(flatten)]
    config: ConfigArgs,

    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config.resolve(&[])?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if !(args.max_megapixels > 0.0 && args.max_megapixels <= 64.0) {
        anyhow::bail!("`--max-megapixels` must be above 0 and at most 64, not {}", args.max_megapixels);
    }
    let cnn = cnn_weights(args.cnn.clone())?;
    let mut paths = ModelPaths::from_dir(&args.models, cnn);
    paths.captioner = args.captioner.clone();
    if let Some(lm) = &args.lm {
        paths.lm = Some(lm.clone());
    }
    if let Some(decoder) = &args.decoder {
        paths.decoder = decoder.clone();
    }
    let device = args.device.one(Some(&config), "serve")?;
    let generator = Generator::load(&paths, true, &device)
        .with_context(|| format!("cannot load the models in `{}`", args.models.display()))?;
    let caption_texts = generator.photos.retriever().map(|retriever| retriever.bank.texts(&[]).0).unwrap_or_default();
    let workers = args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let settings = ServeSettings {
        workers,
        queue: args.queue,
        timeout: Duration::from_secs(args.timeout),
        max_body_bytes: args.max_upload_mb << 20,
        max_pixels: (args.max_megapixels * 1e6) as u64,
        body_timeout: Duration::from_secs(args.read_timeout.max(1)),
        ..ServeSettings::default()
    };
    let connections = ConnectionSettings {
        max_connections: args.max_connections,
        header_timeout: Duration::from_secs(args.read_timeout.max(1)),
        shutdown_deadline: Duration::from_secs(args.shutdown_timeout),
        ..ConnectionSettings::default()
    };
    let state = ServeState::new(Arc::new(generator), config.generate.clone(), settings, caption_texts);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        eprintln!(
            "storytool serving {} on http://{} ({workers} workers, queue {})",
            args.models.display(),
            listener.local_addr()?,
            args.queue
        );
        let stopped = serve(listener, router(state), &connections, shutdown_signal()).await?;
        match stopped {
            Stopped::Drained => eprintln!("stopped"),
            Stopped::DeadlinePassed(open) => {
                eprintln!("stopped after {} s, dropping {open} open connections", args.shutdown_timeout)
            }
        }
        anyhow::Ok(())
    });
    // Connections dropped at the deadline may still have tasks: do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(200));
    served
}

/// Ctrl-C or SIGTERM (what Docker and Kubernetes send): stop accepting, finish the requests in flight.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    eprintln!("shutting down: finishing the requests in flight (at most --shutdown-timeout seconds)");
}
