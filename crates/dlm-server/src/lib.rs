//! `dlm-server`: an OpenAI-compatible HTTP server for diffusion language models (the
//! server of `dlm serve`). It streams the denoising as server-sent events, one chunk per
//! step, and batches continuously at step granularity: one scheduler thread owns the
//! model and advances every request's rows by one step per forward pass, each row with
//! its own steps, strategy, schedule and seed ([`dlm_diffusion::StepBatch`]).
//!
//! [`start`] builds the router and the scheduler (tests drive the router directly);
//! [`serve`] listens, and on SIGTERM / Ctrl-C stops accepting, lets in-flight work finish
//! within [`Limits::shutdown_grace`], cancels the rest and returns. The protocol is
//! documented in `docs/serving.md`.
//!
//! Modules depend downward only: `error`, `params`, `metrics`, `auth` at the bottom; then
//! `template`, `config`, `prompt`, `options`, `request`; `scheduler`; `output`, `response`;
//! `app`; `stream`; `routes`.

mod app;
mod auth;
mod config;
mod error;
mod metrics;
mod options;
mod output;
mod params;
mod prompt;
mod request;
mod response;
mod routes;
mod scheduler;
mod stream;
mod template;

pub use auth::{Access, ApiKey, read_key_file};
pub use config::{Limits, ServedModel, ServerConfig};
pub use error::{ApiError, ServerError};
pub use request::{DEFAULT_MAX_TOKENS, DEFAULT_STEPS};
pub use response::MASK_MARKER;
pub use template::{CHAT_TEMPLATE_FILE, ChatTemplate};

use app::App;
use axum::Router;
use metrics::Metrics;
use request::ModelInfo;
use scheduler::{Control, Engine};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

/// A started server core: its router and the scheduler thread behind it.
pub struct Running {
    pub router: Router,
    control: Arc<Control>,
    scheduler: Option<JoinHandle<()>>,
    grace: Duration,
}

impl Running {
    /// Stops admitting new requests; queued and running ones still finish.
    pub fn drain(&self) {
        self.control.draining.store(true, Ordering::SeqCst);
    }

    /// Drains, waits up to the grace period for in-flight work, cancels what is left and
    /// joins the scheduler thread.
    pub fn shutdown(mut self) {
        self.drain();
        let deadline = std::time::Instant::now() + self.grace;
        while self.control.alive.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.control.cancel.store(true, Ordering::SeqCst);
        if let Some(handle) = self.scheduler.take() {
            let _ = handle.join();
        }
    }
}

/// Request parsing without a model or a scheduler: what `POST /v1/completions` and
/// `POST /v1/chat/completions` do with a body before they queue it. For the fuzz targets
/// in `fuzz/` and their replay test; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::request::{self, Endpoint, ModelInfo};
    use crate::{ApiError, ChatTemplate, Limits};
    use dlm_data::{DataError, Tokenizer};

    pub struct RequestParser {
        info: ModelInfo,
    }

    impl RequestParser {
        /// A parser for a model with `tokenizer` and `template`; `vocab_size`,
        /// `max_positions` and `length_classes` stand in for the network. Default limits.
        pub fn new(
            tokenizer: Tokenizer,
            template: ChatTemplate,
            vocab_size: usize,
            max_positions: usize,
            length_classes: Option<usize>,
        ) -> Result<RequestParser, DataError> {
            let special = tokenizer.special_tokens()?;
            let lead = crate::prompt::leading_specials(&tokenizer, &special);
            let info = ModelInfo {
                name: "fuzz".into(),
                tokenizer,
                special,
                template,
                max_positions,
                length_classes,
                limits: Limits::default(),
                vocab_size,
                lead,
            };
            Ok(RequestParser { info })
        }

        /// Parses `body` (bytes as received) for the chat endpoint when `chat`, else for
        /// completions; the checked request is dropped.
        pub fn parse(&self, chat: bool, body: &[u8]) -> Result<(), ApiError> {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}"), "invalid_json"))?;
            let endpoint = if chat { Endpoint::Chat } else { Endpoint::Completions };
            request::parse(endpoint, &value, &self.info).map(drop)
        }
    }
}

/// Starts the scheduler thread with `model` and returns the router, open to every caller.
pub fn start(model: ServedModel, limits: Limits) -> Result<Running, ServerError> {
    start_with(model, limits, Access::open())
}

/// [`start`] with API keys (and which endpoints stay public) as `access` says.
pub fn start_with(model: ServedModel, limits: Limits, access: Access) -> Result<Running, ServerError> {
    limits.validate()?;
    let max_positions = model.lm.max_sequence_length();
    let lead = prompt::leading_specials(&model.tokenizer, &model.special);
    let info = ModelInfo {
        vocab_size: model.lm.vocab_size(),
        lead,
        name: model.name,
        tokenizer: model.tokenizer,
        special: model.special,
        template: model.template,
        max_positions,
        length_classes: model.length_predictor.as_ref().map(|p| p.config().num_classes),
        limits: limits.clone(),
    };
    let metrics = Arc::new(Metrics::default());
    let engine = Engine { lm: model.lm, length_predictor: model.length_predictor, special: model.special.into() };
    let (scheduler, handle) = scheduler::spawn(engine, &limits, metrics.clone())?;
    let control = scheduler.control.clone();
    let app = Arc::new(App::new(info, scheduler, metrics));
    Ok(Running { router: routes::router(app, access), control, scheduler: Some(handle), grace: limits.shutdown_grace })
}

/// Serves `model` on `config.host:config.port` until SIGTERM or Ctrl-C, then shuts down
/// gracefully (see the crate docs). `on_ready` is called once the socket listens.
pub async fn serve(
    model: ServedModel,
    config: ServerConfig,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), ServerError> {
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServerError::Bind { addr: addr.clone(), source })?;
    if !config.access.requires_key() && !is_loopback(&config.host) {
        tracing::warn!(
            "listening on {} without an API key: anyone who can reach this address can use the model \
             (give --api-key, --api-key-file or DLM_API_KEY)",
            config.host
        );
    }
    let running = start_with(model, config.limits.clone(), config.access.clone())?;
    on_ready(listener.local_addr()?);
    let control = running.control.clone();
    let grace = running.grace;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new requests; in-flight ones get {:.0} s", grace.as_secs_f64());
        control.draining.store(true, Ordering::SeqCst);
        let _ = stop_tx.send(true);
    };
    let server = axum::serve(listener, running.router.clone()).with_graceful_shutdown(signal);
    // After the signal, connections get the grace period plus a margin to close; then
    // the process stops waiting for them.
    let mut stop = stop_rx.clone();
    let hard_stop = async move {
        let _ = stop.wait_for(|&s| s).await;
        tokio::time::sleep(grace + Duration::from_secs(2)).await;
    };
    let cancel_after_grace = {
        let control = running.control.clone();
        let mut stop = stop_rx;
        tokio::spawn(async move {
            let _ = stop.wait_for(|&s| s).await;
            tokio::time::sleep(grace).await;
            control.cancel.store(true, Ordering::SeqCst);
        })
    };
    tokio::select! {
        r = server => r?,
        _ = hard_stop => tracing::warn!("connections still open after the grace period; closing them"),
    }
    cancel_after_grace.abort();
    tokio::task::spawn_blocking(move || running.shutdown()).await.map_err(|e| ServerError::Config(e.to_string()))?;
    Ok(())
}

/// Whether `host` only accepts connections from this machine.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
