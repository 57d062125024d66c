//! KV caches in the server, on the real tiny model: a request's `cache` (prefix, dual,
//! refresh:R) gives what `dlm generate --cache` (`denoise` of the canvas alone) gives,
//! alone and in a batch beside uncached rows and rows at other blocks; the bytes the caches
//! hold and reserve are in /metrics; a request that does not fit in the free part of the
//! cache budget waits its turn, and one larger than the whole budget gets 429.

mod common;

use axum::http::StatusCode;
use common::{load, metric, model_dir, post_json, start, text};
use dlm_data::canvas_prefix;
use dlm_diffusion::{Cache, Canvas, SamplerConfig, Schedule, SpecialIds, StrategyKnobs, StrategyName, denoise};
use dlm_models::MaskedLm;
use dlm_server::Limits;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PROMPT: &str = "the capital of france is";

/// Cached requests of every kind (llada and fast-dllm with block caches; the paper's
/// sampler with a refreshed one), each with the configuration `dlm generate` takes for it.
fn cached() -> Vec<(Value, StrategyName, StrategyKnobs, usize, Cache)> {
    let knobs = |block_length, threshold| StrategyKnobs { block_length, threshold, ..StrategyKnobs::default() };
    vec![
        (
            json!({"prompt": PROMPT, "max_tokens": 12, "steps": 12, "strategy": "llada", "block_length": 4, "cache": "dual"}),
            StrategyName::Llada,
            knobs(Some(4), None),
            12,
            Cache::Dual,
        ),
        (
            json!({"prompt": PROMPT, "max_tokens": 12, "strategy": "fast-dllm", "block_length": 6, "threshold": 0.3,
                   "cache": "prefix"}),
            StrategyName::FastDllm,
            knobs(Some(6), Some(0.3)),
            12,
            Cache::Prefix,
        ),
        (
            json!({"prompt": PROMPT, "max_tokens": 12, "steps": 10, "cache": "refresh:3"}),
            StrategyName::ReparamUncond,
            StrategyKnobs::default(),
            10,
            Cache::Refresh(3),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_requests_equal_generate_alone_and_in_a_batch() {
    let Some(server) = start(Limits::default()) else { return };
    let r = server.router.clone();
    let (lm, tokenizer) = load(&model_dir().unwrap());
    let special = SpecialIds::from(tokenizer.special_tokens().unwrap());
    let prefix = canvas_prefix(&tokenizer, PROMPT, special.eos).unwrap();
    for (body, name, knobs, steps, cache) in cached() {
        let cfg = SamplerConfig { steps, strategy: name.build(Schedule::Cosine, knobs), cache, ..SamplerConfig::default() };
        let want = denoise(&lm, &[Canvas::new(&prefix, 12, special).unwrap()], &cfg, special).unwrap();
        let want = tokenizer.decode(&want[0].generated, true).unwrap();
        let (status, alone) = post_json(&r, "/v1/completions", &body).await;
        assert_eq!(status, StatusCode::OK, "{alone}");
        assert_eq!(text(&alone), want, "{body}: alone");
        // Beside uncached rows and a cached row started earlier (another block, another
        // cache state).
        let mut mates = Vec::new();
        for mate in [
            json!({"prompt": "once upon a time", "max_tokens": 20, "steps": 40, "seed": 3}),
            json!({"prompt": "hello", "max_tokens": 16, "steps": 16, "strategy": "llada", "block_length": 4,
                   "cache": "dual"}),
        ] {
            let r = r.clone();
            mates.push(tokio::spawn(async move { post_json(&r, "/v1/completions", &mate).await }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (status, batched) = post_json(&r, "/v1/completions", &body).await;
        assert_eq!(status, StatusCode::OK, "{batched}");
        assert_eq!(text(&batched), want, "{body}: in a batch");
        for m in mates {
            let (status, v) = m.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{v}");
        }
    }
    // Every cache freed with its rows (the reservation before the answer, the rows'
    // bytes at the end of the step).
    assert_eq!(metric(&r, "dlm_kv_cache_reserved_bytes").await, 0.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&r, "dlm_kv_cache_bytes").await != 0.0 {
        assert!(Instant::now() < deadline, "the caches outlived their rows");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_budget_makes_requests_wait_or_refuses_them() {
    let Some(dir) = model_dir() else { return };
    let (lm, tokenizer) = load(&dir);
    let special = SpecialIds::from(tokenizer.special_tokens().unwrap());
    let prefix = canvas_prefix(&tokenizer, "x", special.eos).unwrap();
    // Room for one request of 32 tokens at a time.
    let one = lm.kv_cache_bytes(Canvas::new(&prefix, 32, special).unwrap().ids().len()).unwrap();
    let Some(server) = start(Limits { kv_cache_budget: one, ..Limits::default() }) else { return };
    let r = server.router.clone();
    assert_eq!(metric(&r, "dlm_kv_cache_budget_bytes").await, one as f64);
    let body = |seed: u64| json!({"prompt": "x", "max_tokens": 32, "steps": 300, "cache": "refresh:4", "seed": seed});
    // More than the whole budget: 429 at once, naming the budget.
    let (status, v) = post_json(&r, "/v1/completions", &json!({"prompt": "x", "max_tokens": 33, "cache": "refresh:4"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["code"], "cache_budget_exceeded", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("--kv-cache-budget-mb"), "{v}");
    // Two that each fit: the second waits for the first, then runs.
    let first = tokio::spawn({
        let r = r.clone();
        async move { post_json(&r, "/v1/completions", &body(1)).await }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&r, "dlm_kv_cache_reserved_bytes").await != one as f64 {
        assert!(Instant::now() < deadline, "the first request never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = tokio::spawn({
        let r = r.clone();
        async move { post_json(&r, "/v1/completions", &body(2)).await }
    });
    let mut waited = false;
    while !first.is_finished() {
        let waiting = metric(&r, "dlm_kv_cache_waiting_requests").await;
        waited |= waiting == 1.0;
        assert!(metric(&r, "dlm_kv_cache_reserved_bytes").await <= one as f64);
        assert!(metric(&r, "dlm_kv_cache_bytes").await <= one as f64);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(waited, "the second request never waited for the budget");
    for task in [first, second] {
        let (status, v) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["usage"]["completion_tokens"], 32);
    }
    assert_eq!(metric(&r, "dlm_kv_cache_waiting_requests").await, 0.0);
    assert_eq!(metric(&r, "dlm_kv_cache_reserved_bytes").await, 0.0);
    server.shutdown();
}
