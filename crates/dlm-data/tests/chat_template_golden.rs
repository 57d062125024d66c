//! Chat templates rendered by `ChatTemplate` must equal, byte for byte, what transformers'
//! `apply_chat_template(messages, tokenize=False, add_generation_prompt=…)` renders:
//! fixtures/chat/expected.json, written by scripts/reference/chat_template_fixtures.py
//! (transformers 4.49.0) from the tokenizer configs in fixtures/chat/{llada,dream,features}.
//! Where the LLaDA and Dream templates come from (and what is still to verify) is in that
//! script and in expected.json's `sources`.

use std::path::{Path, PathBuf};

use dlm_data::{ChatMessage, ChatTemplate, DataError};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat")
}

fn expected() -> Value {
    let path = fixtures().join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("expected.json is JSON")
}

fn template(model: &str) -> ChatTemplate {
    ChatTemplate::from_model_dir(&fixtures().join(model))
        .unwrap_or_else(|e| panic!("{model}: {e}"))
        .unwrap_or_else(|| panic!("{model}: no chat template"))
}

fn messages(case: &Value) -> Vec<ChatMessage> {
    serde_json::from_value(case["messages"].clone()).expect("messages")
}

fn cases_of(model: &str) -> Vec<Value> {
    let all = expected();
    let cases: Vec<Value> =
        all["cases"].as_array().expect("cases").iter().filter(|c| c["model"] == model).cloned().collect();
    assert!(!cases.is_empty(), "no cases for {model} in expected.json");
    cases
}

/// Every case of `model` renders exactly as transformers did (or fails with its message).
fn check(model: &str) {
    let t = template(model);
    for case in cases_of(model) {
        let label = format!("{model}/{} add_generation_prompt={}", case["name"], case["add_generation_prompt"]);
        let generation_prompt = case["add_generation_prompt"].as_bool().expect("add_generation_prompt");
        let got = t.render(&messages(&case), generation_prompt);
        match (case["expected"].as_str(), case["error"].as_str()) {
            (Some(want), _) => {
                let got = got.unwrap_or_else(|e| panic!("{label}: {e}"));
                assert_eq!(got, want, "{label}");
            }
            (None, Some(message)) => {
                let e = got.expect_err(&label);
                assert!(matches!(e, DataError::ChatTemplate { .. }), "{label}: {e:?}");
                let e = e.to_string();
                assert!(e.contains(message) && e.contains("tokenizer_config.json"), "{label}: {e}");
            }
            (None, None) => panic!("{label}: neither expected nor error"),
        }
    }
}

#[test]
fn llada_8b_instruct_matches_transformers() {
    check("llada");
    // LLaDA's template starts with bos and always ends with the assistant header.
    let t = template("llada");
    assert_eq!(t.special_token("bos_token"), Some("<|startoftext|>"));
    let text = t.render(&[ChatMessage::user("Hi")], false).unwrap();
    assert_eq!(
        text,
        "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn dream_v0_instruct_matches_transformers() {
    check("dream");
}

#[test]
fn jinja_features_match_transformers() {
    check("features");
}

#[test]
fn fixtures_were_rendered_by_the_pinned_transformers() {
    let all = expected();
    assert_eq!(all["transformers"], "4.49.0");
    for model in ["llada", "dream", "features"] {
        assert!(all["sources"][model].is_string(), "no source note for {model}");
    }
}
