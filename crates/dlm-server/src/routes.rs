//! The HTTP surface: `GET /` (the playground), `GET /health`, `GET /v1/models`,
//! `POST /v1/completions`, `POST /v1/chat/completions`, `POST /tokenize`, `GET /metrics`.
//! Every request is logged in one line and counted; every error is an OpenAI error object.
//! With API keys, every endpoint but `/health` (and `/metrics` or `/` when public) needs one
//! (`auth`).

use crate::app::{App, unix_now};
use crate::auth::{Access, require_key};
use crate::error::{ApiError, json_response};
use crate::output::finish_choices;
use crate::params::Fields;
use crate::request::{Endpoint, parse};
use crate::response::{self, Header};
use crate::scheduler::Event;
use crate::stream::sse_response;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The playground page, embedded in the binary.
const PLAYGROUND: &str = include_str!("playground.html");
/// A body this many times over the limit is not read to its end before the 413.
const DRAIN_FACTOR: usize = 64;

/// The routes; with keys in `access`, behind the key check (inside the log line, so
/// refusals are logged and counted too).
pub fn router(app: Arc<App>, access: Access) -> Router {
    Router::new()
        .route("/", get(playground))
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/tokenize", post(tokenize))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::new(access), require_key))
        .layer(middleware::from_fn_with_state(app.clone(), log_and_count))
        .with_state(app)
}

/// One log line per request, and the request counter.
async fn log_and_count(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let known = ["/", "/health", "/v1/models", "/v1/completions", "/v1/chat/completions", "/tokenize", "/metrics"];
    app.metrics.record_request(if known.contains(&path.as_str()) { &path } else { "other" }, status);
    tracing::info!("{method} {path} {status} {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
    response
}

async fn not_found(req: Request) -> ApiError {
    ApiError::with_status(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "not_found",
        format!("no route {}", req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    let message = format!("{} is not allowed on {}", req.method(), req.uri().path());
    ApiError::with_status(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed", message)
}

async fn playground() -> Response {
    let mut r = PLAYGROUND.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let control = &app.scheduler.control;
    if !control.alive.load(Ordering::SeqCst) {
        return ApiError::unavailable("the scheduler has stopped").into_response();
    }
    if control.draining.load(Ordering::SeqCst) {
        return ApiError::unavailable("the server is shutting down").into_response();
    }
    json_response(StatusCode::OK, &json!({"status": "ok", "model": app.info.name}))
}

async fn models(State(app): State<Arc<App>>) -> Response {
    let model = json!({
        "id": app.info.name,
        "object": "model",
        "created": app.started,
        "owned_by": "dlm",
        "max_model_len": app.info.max_positions,
        "length_predictor": app.info.length_classes.is_some(),
    });
    json_response(StatusCode::OK, &json!({"object": "list", "data": [model]}))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut r = app.metrics.render().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

/// Reads the body as JSON: 413 past `limit` bytes (the rest of a moderately larger body
/// is read and dropped first, so the client gets the answer rather than a reset), 400 if
/// it is not JSON.
async fn read_json(req: Request, limit: usize) -> Result<Value, ApiError> {
    let too_large = || {
        ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "body_too_large",
            format!("the request body exceeds the server's limit of {limit} bytes"),
        )
    };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit.saturating_mul(DRAIN_FACTOR)) {
        return Err(too_large());
    }
    let mut stream = req.into_body().into_data_stream();
    let mut body = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes =
            chunk.map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}"), "invalid_body"))?;
        seen += chunk.len();
        if seen > limit.saturating_mul(DRAIN_FACTOR) {
            break;
        }
        if seen <= limit {
            body.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}"), "invalid_json"))
}

async fn completions(State(app): State<Arc<App>>, req: Request) -> Response {
    generate(app, Endpoint::Completions, req).await.unwrap_or_else(IntoResponse::into_response)
}

async fn chat(State(app): State<Arc<App>>, req: Request) -> Response {
    generate(app, Endpoint::Chat, req).await.unwrap_or_else(IntoResponse::into_response)
}

async fn generate(app: Arc<App>, endpoint: Endpoint, req: Request) -> Result<Response, ApiError> {
    let body = read_json(req, app.info.limits.max_body_bytes).await?;
    let request = parse(endpoint, &body, &app.info)?;
    let mut events = app.scheduler.submit(request.clone())?;
    let gone = || ApiError::unavailable("the scheduler stopped before answering");
    match events.recv().await {
        Some(Event::Admitted) => {}
        Some(Event::Failed(e)) => return Err(e),
        _ => return Err(gone()),
    }
    let prefix = match endpoint {
        Endpoint::Completions => "cmpl",
        Endpoint::Chat => "chatcmpl",
    };
    let id = app.next_id(prefix);
    if request.stream {
        return Ok(sse_response(app, request, id, events));
    }
    loop {
        match events.recv().await {
            Some(Event::Done(outs)) => {
                let finished = finish_choices(&app.info, &request, &outs);
                let header = Header { id: &id, created: unix_now(), model: &request.model, endpoint };
                let body = response::whole(&header, &request, &finished, response::completion_tokens(&outs.choices));
                return Ok(json_response(StatusCode::OK, &body));
            }
            Some(Event::Failed(e)) => return Err(e),
            Some(_) => {}
            None => return Err(gone()),
        }
    }
}

/// `POST /tokenize`: `{"prompt": text}` or `{"messages": [...]}` (through the chat
/// template) → `{"tokens", "count", "max_model_len"}`; `add_special_tokens` adds
/// `<s>`/`</s>` as the model sees them (default true, but false for `messages` rendered by
/// the model's own Jinja template, whose text already holds its special tokens).
async fn tokenize(State(app): State<Arc<App>>, req: Request) -> Response {
    let result = async {
        let body = read_json(req, app.info.limits.max_body_bytes).await?;
        let f = Fields::new(&body)?;
        let add_special = f.bool("add_special_tokens")?;
        let prompt = f.str("prompt")?;
        let add_special = add_special.unwrap_or(!(prompt.is_none() && app.info.template.is_jinja()));
        let text = match (prompt, f.get("messages")) {
            (Some(p), _) => p.to_owned(),
            (None, Some(m)) => app.info.template.render(m)?,
            (None, None) => return Err(ApiError::invalid("prompt", "give `prompt` (a string) or `messages`")),
        };
        let tokens = app
            .info
            .tokenizer
            .encode(&text, add_special)
            .map_err(|e| ApiError::invalid("prompt", format!("cannot tokenize: {e}")))?;
        let body = json!({"tokens": tokens, "count": tokens.len(), "max_model_len": app.info.max_positions});
        Ok::<_, ApiError>(json_response(StatusCode::OK, &body))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}
