//! The chat template: how `messages` become one prompt. The model sees `<s> prompt
//! response </s>` (SPEC §2), with no role tokens, so the default is the paper's
//! instruction format: each message's text as is, messages joined by a blank line, nothing
//! after the last one (a single user message is exactly the instruction prompt that
//! Flan-style instruction tuning trains on, cue included).
//!
//! A model directory may override it with `chat_template.json`, every key optional:
//!
//! ```json
//! {"system": "{content}", "user": "### Instruction:\n{content}", "assistant": "{content}",
//!  "separator": "\n\n", "generation_prompt": "\n\n### Response:\n"}
//! ```
//!
//! Each message becomes its role's pattern with `{content}` replaced; the results are
//! joined by `separator`, and `generation_prompt` is appended.
//!
//! A model with its own Jinja chat template (`tokenizer_config.json`'s `chat_template`, or
//! `chat_template.jinja`: instruction-tuned models such as LLaDA-8B-Instruct or
//! Dream-v0-Instruct-7B) is served through that instead ([`dlm_data::ChatTemplate`], as
//! transformers' `apply_chat_template(messages, add_generation_prompt=True)`), and its text
//! is tokenized without adding special tokens (the template writes them); a
//! `chat_template.json` beside it is then not used.

use crate::error::{ApiError, ServerError};
use crate::params::{type_name, wrong_type};
use dlm_data::{ChatMessage, DataError, SpecialTokens, Tokenizer, canvas_prefix, chat_prefix};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// The file in a model directory that overrides the default template.
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.json";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatTemplate {
    pub system: String,
    pub user: String,
    pub assistant: String,
    pub separator: String,
    pub generation_prompt: String,
    /// The model's own Jinja template; when present it renders the messages instead of the
    /// patterns above.
    #[serde(skip)]
    pub jinja: Option<dlm_data::ChatTemplate>,
}

impl Default for ChatTemplate {
    fn default() -> Self {
        ChatTemplate {
            system: "{content}".into(),
            user: "{content}".into(),
            assistant: "{content}".into(),
            separator: "\n\n".into(),
            generation_prompt: String::new(),
            jinja: None,
        }
    }
}

impl ChatTemplate {
    /// The model's Jinja chat template when it has one, else `dir/chat_template.json` when
    /// present, else the default.
    pub fn for_model(dir: &Path) -> Result<ChatTemplate, ServerError> {
        let path = dir.join(CHAT_TEMPLATE_FILE);
        if let Some(jinja) = dlm_data::ChatTemplate::from_model_dir(dir)? {
            if path.exists() {
                tracing::warn!("{} is not used: the model's own chat template {} is", path.display(), jinja.path().display());
            }
            return Ok(ChatTemplate { jinja: Some(jinja), ..ChatTemplate::default() });
        }
        if !path.exists() {
            return Ok(ChatTemplate::default());
        }
        let err = |message: String| ServerError::Template { path: path.clone(), message };
        let text = std::fs::read_to_string(&path).map_err(|e| err(format!("cannot read: {e}")))?;
        serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "not a chat template ({e}); expected an object with any of system, user, assistant, separator, \
                 generation_prompt"
            ))
        })
    }

    /// The prompt for a `messages` array (validated: roles, string or text-part content).
    pub fn render(&self, messages: &Value) -> Result<String, ApiError> {
        let Value::Array(list) = messages else { return Err(wrong_type("messages", "an array of messages", messages)) };
        if list.is_empty() {
            return Err(ApiError::invalid("messages", "`messages` must contain at least one message"));
        }
        let mut parts = Vec::with_capacity(list.len());
        let mut chat = Vec::with_capacity(list.len());
        for (i, m) in list.iter().enumerate() {
            let field = |name: &str| format!("messages[{i}].{name}");
            let Some(obj) = m.as_object() else {
                return Err(ApiError::invalid(
                    &format!("messages[{i}]"),
                    format!("messages[{i}] must be an object, found {}", type_name(m)),
                ));
            };
            let role = match obj.get("role") {
                Some(Value::String(r)) => r.as_str(),
                Some(other) => return Err(wrong_type(&field("role"), "a string", other)),
                None => return Err(ApiError::invalid(&field("role"), format!("{} is missing", field("role")))),
            };
            let pattern = match role {
                "system" | "developer" => &self.system,
                "user" => &self.user,
                "assistant" => &self.assistant,
                other => {
                    return Err(ApiError::invalid(
                        &field("role"),
                        format!("{} must be one of system, developer, user, assistant; got {other:?}", field("role")),
                    ));
                }
            };
            let content = content_text(obj.get("content"), &field("content"))?;
            match &self.jinja {
                // OpenAI's `developer` is the `system` of the models' templates.
                Some(_) => chat.push(ChatMessage::new(if role == "developer" { "system" } else { role }, content)),
                None => parts.push(pattern.replace("{content}", &content)),
            }
        }
        match &self.jinja {
            Some(jinja) => jinja.render(&chat, true).map_err(|e| ApiError::invalid("messages", e.to_string())),
            None => Ok(parts.join(&self.separator) + &self.generation_prompt),
        }
    }

    /// Whether the model's own Jinja template renders the messages (its text is then
    /// tokenized without adding special tokens).
    pub fn is_jinja(&self) -> bool {
        self.jinja.is_some()
    }

    /// The canvas prefix of a rendered chat prompt: with the model's Jinja template its ids
    /// as they are ([`chat_prefix`]), else `<s> prompt` as for a completion ([`canvas_prefix`]).
    pub fn prompt_ids(&self, tokenizer: &Tokenizer, text: &str, special: &SpecialTokens) -> Result<Vec<u32>, DataError> {
        match self.jinja {
            Some(_) => chat_prefix(tokenizer, text),
            None => canvas_prefix(tokenizer, text, special.eos),
        }
    }
}

/// A message's text: a string, or an array of `{"type": "text", "text": …}` parts.
fn content_text(content: Option<&Value>, name: &str) -> Result<String, ApiError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(ApiError::invalid(
                            &format!("{name}[{j}]"),
                            format!("{name}[{j}] must be a text part {{\"type\": \"text\", \"text\": …}}"),
                        ));
                    }
                }
            }
            Ok(text)
        }
        Some(other) => Err(wrong_type(name, "a string or an array of text parts", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_joins_message_texts() {
        let t = ChatTemplate::default();
        let one = json!([{"role": "user", "content": "Translate to English: Hallo Welt. English: "}]);
        assert_eq!(t.render(&one).unwrap(), "Translate to English: Hallo Welt. English: ");
        let many = json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}]},
        ]);
        assert_eq!(t.render(&many).unwrap(), "Be brief.\n\nHi!");
    }

    #[test]
    fn file_overrides_and_bad_messages_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHAT_TEMPLATE_FILE), r#"{"user": "Q: {content}", "generation_prompt": " A:"}"#)
            .unwrap();
        let t = ChatTemplate::for_model(dir.path()).unwrap();
        assert_eq!(t.render(&json!([{"role": "user", "content": "2+2?"}])).unwrap(), "Q: 2+2? A:");
        let e = t.render(&json!([{"role": "robot", "content": "x"}])).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        assert_eq!(t.render(&json!("hi")).unwrap_err().param.as_deref(), Some("messages"));
        assert_eq!(
            t.render(&json!([{"role": "user", "content": 5}])).unwrap_err().param.as_deref(),
            Some("messages[0].content")
        );
        std::fs::write(dir.path().join(CHAT_TEMPLATE_FILE), r#"{"usr": "x"}"#).unwrap();
        let e = ChatTemplate::for_model(dir.path()).unwrap_err().to_string();
        assert!(e.contains("chat_template.json") && e.contains("unknown field"), "{e}");
    }

    #[test]
    fn the_models_jinja_template_wins_and_its_errors_are_the_clients() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHAT_TEMPLATE_FILE), r#"{"user": "Q: {content}"}"#).unwrap();
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"bos_token": "<s>", "chat_template": "{{ bos_token }}{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"}"#,
        )
        .unwrap();
        let t = ChatTemplate::for_model(dir.path()).unwrap();
        assert!(t.is_jinja());
        let msgs = json!([{"role": "developer", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]);
        assert_eq!(t.render(&msgs).unwrap(), "<s><system>Be brief.<user>Hi<assistant>");
        // Messages are still checked field by field before the template sees them.
        assert_eq!(t.render(&json!([{"role": "tool", "content": "x"}])).unwrap_err().param.as_deref(), Some("messages[0].role"));
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"chat_template": "{% if messages | length > 1 %}{{ raise_exception('one message only') }}{% endif %}x"}"#,
        )
        .unwrap();
        let t = ChatTemplate::for_model(dir.path()).unwrap();
        let two = json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]);
        let e = t.render(&two).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(e.message.contains("one message only"), "{}", e.message);
        std::fs::write(dir.path().join("tokenizer_config.json"), r#"{"chat_template": "{% if %}"}"#).unwrap();
        let e = ChatTemplate::for_model(dir.path()).unwrap_err().to_string();
        assert!(e.contains("tokenizer_config.json") && e.contains("does not compile"), "{e}");
    }
}
