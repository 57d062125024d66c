//! The scheduler on the real tiny model: a seeded request gives the same text alone, in a
//! mixed batch that it joins mid-way, and without continuous batching, and that text is
//! what `dlm generate` (`denoise` of the canvas alone) gives; a client that disconnects
//! frees its row; a full queue answers 429 at once; shutdown answers what is in flight.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{call, load, metric, model_dir, post_json, start, text};
use dlm_data::canvas_prefix;
use dlm_diffusion::{Canvas, Decoding, SamplerConfig, Schedule, SpecialIds, StrategyKnobs, StrategyName, denoise};
use dlm_server::Limits;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// A request that draws from its generator at every step (sampling and Gumbel noise).
fn seeded() -> Value {
    json!({"prompt": "the capital of france is", "max_tokens": 8, "steps": 8, "temperature": 0.9, "seed": 42,
           "strategy": "stochastic"})
}

/// Batch mates of other lengths, strategies, temperatures and step counts.
fn others() -> Vec<Value> {
    vec![
        json!({"prompt": "once upon a time there was", "max_tokens": 40, "steps": 60, "temperature": 1.2, "seed": 1}),
        json!({"prompt": "a", "max_tokens": 3, "steps": 50, "strategy": "cmlm", "seed": 5}),
        json!({"prompt": ["red green", "one two three four five six"], "max_tokens": 16, "steps": 40, "n": 2,
               "strategy": "llada", "temperature": 0.5}),
        json!({"prompt": "hello", "max_tokens": 12, "strategy": "fast-dllm", "block_length": 4, "threshold": 0.3}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_output_does_not_depend_on_the_batch() {
    let Some(server) = start(Limits::default()) else { return };
    let r = server.router.clone();
    let (status, alone) = post_json(&r, "/v1/completions", &seeded()).await;
    assert_eq!(status, StatusCode::OK, "{alone}");
    let alone = text(&alone);

    // The same request joins a batch that is already running, twice.
    let mut mates = Vec::new();
    for body in others() {
        let r = r.clone();
        mates.push(tokio::spawn(async move { post_json(&r, "/v1/completions", &body).await }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let body = seeded();
    let (a, b) = tokio::join!(post_json(&r, "/v1/completions", &body), post_json(&r, "/v1/completions", &body));
    for m in mates {
        let (status, v) = m.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    assert_eq!(text(&a.1), alone, "in a mixed batch");
    assert_eq!(text(&b.1), alone, "in a mixed batch, beside itself");
    server.shutdown();

    // One request at a time gives the same.
    let Some(serial) = start(Limits { continuous_batching: false, ..Limits::default() }) else { return };
    assert_eq!(text(&post_json(&serial.router, "/v1/completions", &seeded()).await.1), alone, "without batching");
    serial.shutdown();

    // And it is `dlm generate --length 8 --steps 8 --strategy stochastic --temperature 0.9 --seed 42`.
    let dir = model_dir().unwrap();
    let (lm, tokenizer) = load(&dir);
    let special = SpecialIds::from(tokenizer.special_tokens().unwrap());
    let prefix = canvas_prefix(&tokenizer, "the capital of france is", special.eos).unwrap();
    let cfg = SamplerConfig {
        steps: 8,
        strategy: StrategyName::Stochastic.build(Schedule::Cosine, StrategyKnobs::default()),
        decoding: Decoding::Sample { temperature: 0.9 },
        seed: 42,
        record_trajectory: false,
        ..SamplerConfig::default()
    };
    let out = denoise(&lm, &[Canvas::new(&prefix, 8, special).unwrap()], &cfg, special).unwrap();
    assert_eq!(tokenizer.decode(&out[0].generated, true).unwrap(), alone, "equals dlm generate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_frees_its_row() {
    let Some(server) = start(Limits::default()) else { return };
    let r = server.router.clone();
    let body = json!({"prompt": "x", "max_tokens": 32, "steps": 1000, "stream": true}).to_string();
    let req =
        Request::post("/v1/completions").header("content-type", "application/json").body(Body::from(body)).unwrap();
    let response = r.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut frames = response.into_body().into_data_stream();
    let first = frames.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"diffusion\""));
    assert_eq!(metric(&r, "dlm_batch_rows").await, 1.0);
    drop(frames);
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&r, "dlm_batch_rows").await != 0.0 {
        assert!(Instant::now() < deadline, "the row was not freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&r, "dlm_cancelled_requests_total").await, 1.0);
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_at_once() {
    let limits = Limits { queue_size: 1, continuous_batching: false, ..Limits::default() };
    let Some(server) = start(limits) else { return };
    let r = server.router.clone();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let r = r.clone();
        let body = json!({"prompt": "x", "max_tokens": 16, "steps": 150, "seed": i});
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let (status, v) = post_json(&r, "/v1/completions", &body).await;
            (status, v, t.elapsed())
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let (status, v, elapsed) = t.await.unwrap();
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(v["error"]["code"], "queue_full", "{v}");
            assert!(elapsed < Duration::from_secs(1), "429 took {elapsed:?}");
        }
        statuses.push(status.as_u16());
    }
    assert!(statuses.iter().all(|s| [200, 429].contains(s)), "{statuses:?}");
    assert!(statuses.contains(&429) && statuses.contains(&200), "{statuses:?}");
    assert_eq!(call(&r, "GET", "/health", None).await.0, StatusCode::OK);
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_requests_in_flight() {
    // A grace period too short for a long request: it is cancelled with a 503, not dropped.
    let limits = Limits { shutdown_grace: Duration::from_millis(100), ..Limits::default() };
    let Some(server) = start(limits) else { return };
    let r = server.router.clone();
    let long = tokio::spawn(async move {
        post_json(&r, "/v1/completions", &json!({"prompt": "x", "max_tokens": 32, "steps": 1000})).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let router = server.router.clone();
    tokio::task::spawn_blocking(move || server.shutdown()).await.unwrap();
    let (status, v) = long.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("shut down"));
    // New requests are refused once draining.
    let (status, _) = post_json(&router, "/v1/completions", &json!({"prompt": "x"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
