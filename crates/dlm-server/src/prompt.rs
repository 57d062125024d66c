//! The `prompt` of a completion in every form the OpenAI API allows — a string, a list of
//! strings, a list of token ids, or a list of such lists (one choice group per prompt) —
//! and the canvas prefix each becomes.
//!
//! Text is tokenized as `dlm generate` does (`<s> prompt`, [`canvas_prefix`]). Token ids are
//! the client's own tokenization with the model's tokenizer (as lm-evaluation-harness sends
//! them, without special tokens): the server puts the model's leading special tokens (`<s>`
//! / `[CLS]`, whatever its tokenizer adds before a text) in front, unless the ids already
//! start with them.

use crate::error::ApiError;
use crate::params::{type_name, wrong_type};
use dlm_data::{SpecialTokens, Tokenizer, canvas_prefix};
use serde_json::Value;

/// One prompt as the client sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    Text(String),
    Ids(Vec<u32>),
}

/// A prompt as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptSpec {
    /// The canvas prefix: the leading special tokens and the prompt's tokens.
    pub prefix: Vec<u32>,
    /// Where the prompt's tokens as the client knows them start in `prefix` (after the
    /// special tokens the server added): what `echo` lists, one entry per token.
    pub listed_from: usize,
    /// Where the tokens that can be scored start (after the leading special tokens, whoever
    /// added them).
    pub scored_from: usize,
    /// The text as given; `None` for token ids (decoded when echoed).
    pub text: Option<String>,
}

/// `prompt`: a string, or a non-empty array of strings, of token ids, or of arrays of token
/// ids. Every id must be below `vocab`.
pub fn parse_prompts(v: Option<&Value>, vocab: usize) -> Result<Vec<PromptInput>, ApiError> {
    const EXPECTED: &str = "a string, an array of strings, an array of token ids or an array of arrays of token ids";
    let items = match v {
        None => return Err(ApiError::invalid("prompt", "`prompt` is required")),
        Some(Value::String(s)) => return Ok(vec![PromptInput::Text(s.clone())]),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => return Err(ApiError::invalid("prompt", "`prompt` must not be an empty array")),
        Some(other) => return Err(wrong_type("prompt", EXPECTED, other)),
    };
    match &items[0] {
        Value::Number(_) => Ok(vec![PromptInput::Ids(token_ids(items, "prompt", vocab)?)]),
        Value::Array(_) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Array(ids) => Ok(PromptInput::Ids(token_ids(ids, &format!("prompt[{i}]"), vocab)?)),
                other => Err(wrong_type(&format!("prompt[{i}]"), "an array of token ids (as prompt[0] is)", other)),
            })
            .collect(),
        Value::String(_) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(PromptInput::Text(s.clone())),
                other => Err(wrong_type(&format!("prompt[{i}]"), "a string (as prompt[0] is)", other)),
            })
            .collect(),
        other => Err(ApiError::invalid(
            "prompt[0]",
            format!("`prompt` must be {EXPECTED}; its first item is {}", type_name(other)),
        )),
    }
}

/// Token ids of one prompt: integers from 0 to `vocab − 1`.
fn token_ids(items: &[Value], field: &str, vocab: usize) -> Result<Vec<u32>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(j, v)| {
            let name = format!("{field}[{j}]");
            let id = v.as_u64().ok_or_else(|| match v.as_i64() {
                Some(_) => ApiError::invalid(&name, format!("`{name}` must be a token id from 0 to {}", vocab - 1)),
                None => wrong_type(&name, "a token id (an integer)", v),
            })?;
            if id >= vocab as u64 {
                return Err(ApiError::invalid(
                    &name,
                    format!("`{name}` = {id} is not a token id of this model (its vocabulary has {vocab})"),
                ));
            }
            Ok(id as u32)
        })
        .collect()
}

/// The special tokens the model's tokenizer puts before a text (`<s>` / `[CLS]`, or none):
/// `<s> prompt` of the empty prompt.
pub fn leading_specials(tokenizer: &Tokenizer, special: &SpecialTokens) -> Vec<u32> {
    canvas_prefix(tokenizer, "", special.eos).unwrap_or_default()
}

/// The canvas prefix of a completion prompt. `field` names the prompt in errors.
pub fn completion_prompt(
    input: PromptInput,
    tokenizer: &Tokenizer,
    special: &SpecialTokens,
    lead: &[u32],
    field: &str,
) -> Result<PromptSpec, ApiError> {
    match input {
        PromptInput::Text(text) => {
            let prefix = canvas_prefix(tokenizer, &text, special.eos)
                .map_err(|e| ApiError::invalid(field, format!("cannot tokenize the prompt: {e}")))?;
            let start = if prefix.starts_with(lead) { lead.len() } else { 0 };
            Ok(PromptSpec { prefix, listed_from: start, scored_from: start, text: Some(text) })
        }
        PromptInput::Ids(ids) if !lead.is_empty() && ids.starts_with(lead) => {
            Ok(PromptSpec { prefix: ids, listed_from: 0, scored_from: lead.len(), text: None })
        }
        PromptInput::Ids(ids) => {
            let prefix: Vec<u32> = lead.iter().copied().chain(ids).collect();
            Ok(PromptSpec { prefix, listed_from: lead.len(), scored_from: lead.len(), text: None })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_prompt_form_and_the_field_at_fault() {
        let ok = |v: Value| parse_prompts(Some(&v), 100).unwrap();
        let err = |v: Value| parse_prompts(Some(&v), 100).unwrap_err().param.unwrap();
        assert_eq!(ok(json!("a")), vec![PromptInput::Text("a".into())]);
        assert_eq!(ok(json!(["a", "b"])).len(), 2);
        assert_eq!(ok(json!([5, 7])), vec![PromptInput::Ids(vec![5, 7])]);
        assert_eq!(
            ok(json!([[5], [7, 8], []])),
            vec![PromptInput::Ids(vec![5]), PromptInput::Ids(vec![7, 8]), PromptInput::Ids(vec![])]
        );
        assert_eq!(err(json!([5, "a"])), "prompt[1]");
        assert_eq!(err(json!([5, 100])), "prompt[1]");
        assert_eq!(err(json!([5, -1])), "prompt[1]");
        assert_eq!(err(json!([5, 1.5])), "prompt[1]");
        assert_eq!(err(json!([[5], [7, 100]])), "prompt[1][1]");
        assert_eq!(err(json!([[5], 7])), "prompt[1]");
        assert_eq!(err(json!(["a", [1]])), "prompt[1]");
        assert_eq!(err(json!([{"a": 1}])), "prompt[0]");
        assert_eq!(err(json!([])), "prompt");
        assert_eq!(err(json!(3)), "prompt");
        assert!(parse_prompts(None, 100).is_err());
    }
}
