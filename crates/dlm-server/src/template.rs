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

use crate::error::{ApiError, ServerError};
use crate::params::{type_name, wrong_type};
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
}

impl Default for ChatTemplate {
    fn default() -> Self {
        ChatTemplate {
            system: "{content}".into(),
            user: "{content}".into(),
            assistant: "{content}".into(),
            separator: "\n\n".into(),
            generation_prompt: String::new(),
        }
    }
}

impl ChatTemplate {
    /// `dir/chat_template.json` when present, else the default.
    pub fn for_model(dir: &Path) -> Result<ChatTemplate, ServerError> {
        let path = dir.join(CHAT_TEMPLATE_FILE);
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
            parts.push(pattern.replace("{content}", &content));
        }
        Ok(parts.join(&self.separator) + &self.generation_prompt)
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
}
