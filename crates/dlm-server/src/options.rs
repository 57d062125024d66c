//! What a request asks to get back besides the text: `stop` sequences, `logprobs`,
//! `echo`, and the Monte-Carlo sample count of ELBO scoring (`elbo_samples`).
//!
//! * `stop`: a string or a list of up to `--max-stop` (default 4, OpenAI's) strings; the
//!   text ends before the first occurrence of any of them (empty strings never match).
//! * completions: `logprobs` an integer 0 … 5 (the alternatives per token; the chosen
//!   token is always reported); `echo` puts the prompt before the text, and with
//!   `logprobs` scores the prompt's tokens by the diffusion ELBO.
//! * chat: `logprobs: true` and `top_logprobs` 0 … 5 (which needs `logprobs: true`).

use crate::config::Limits;
use crate::error::ApiError;
use crate::params::{Fields, wrong_type};
use serde_json::Value;

/// The most alternatives per token (OpenAI's limit for completions).
pub const MAX_LOGPROBS: usize = 5;

/// The output options of a request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutputOptions {
    /// Prompt text (and tokens) before the completion.
    pub echo: bool,
    /// Report each token's log-probability and this many alternatives.
    pub logprobs: Option<usize>,
    pub stop: Vec<String>,
    /// Monte-Carlo samples of the ELBO when the prompt is scored.
    pub elbo_samples: usize,
}

impl OutputOptions {
    /// Whether the prompt's tokens are scored (`echo` with `logprobs`).
    pub fn scores_prompt(&self) -> bool {
        self.echo && self.logprobs.is_some()
    }
}

/// Reads `stop`, `logprobs` (`top_logprobs`), `echo` and `elbo_samples` of a completion
/// request, or with `chat` of a chat completion request.
pub fn parse_output(chat: bool, f: &Fields<'_>, limits: &Limits) -> Result<OutputOptions, ApiError> {
    let stop = stop_sequences(f.get("stop"), limits.max_stop)?;
    let (echo, logprobs) = match chat {
        false => (f.bool("echo")?.unwrap_or(false), f.usize_in("logprobs", 0, MAX_LOGPROBS)?),
        true => {
            let on = f.bool("logprobs")?.unwrap_or(false);
            let top = f.usize_in("top_logprobs", 0, MAX_LOGPROBS)?;
            if top.is_some() && !on {
                return Err(ApiError::invalid("top_logprobs", "`top_logprobs` needs `logprobs: true`"));
            }
            (false, on.then(|| top.unwrap_or(0)))
        }
    };
    let elbo_samples = f.usize_in("elbo_samples", 1, limits.max_elbo_samples)?.unwrap_or(limits.elbo_samples);
    Ok(OutputOptions { echo, logprobs, stop, elbo_samples })
}

fn stop_sequences(v: Option<&Value>, max: usize) -> Result<Vec<String>, ApiError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => {
            if items.len() > max {
                return Err(ApiError::invalid(
                    "stop",
                    format!("`stop` may hold at most {max} sequences, got {}", items.len()),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.as_str().map(str::to_owned).ok_or_else(|| wrong_type(&format!("stop[{i}]"), "a string", s))
                })
                .collect()
        }
        Some(other) => Err(wrong_type("stop", "a string or an array of strings", other)),
    }
}

/// The text up to the first occurrence of any stop sequence (`None` when none occurs):
/// the byte length kept.
pub fn stop_at(text: &str, stop: &[String]) -> Option<usize> {
    stop.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Clone, Copy)]
    enum Endpoint {
        Completions,
        Chat,
    }

    fn parse(endpoint: Endpoint, body: Value) -> Result<OutputOptions, ApiError> {
        parse_output(matches!(endpoint, Endpoint::Chat), &Fields::new(&body).unwrap(), &Limits::default())
    }

    #[test]
    fn fields_and_their_limits() {
        let o = parse(Endpoint::Completions, json!({"stop": "\n", "logprobs": 1, "echo": true})).unwrap();
        assert_eq!((o.stop, o.logprobs, o.echo, o.elbo_samples), (vec!["\n".to_owned()], Some(1), true, 32));
        assert!(parse(Endpoint::Completions, json!({"logprobs": 1})).unwrap().logprobs == Some(1));
        let param = |e: Endpoint, v: Value| parse(e, v).unwrap_err().param.unwrap();
        assert_eq!(param(Endpoint::Completions, json!({"stop": ["a", "b", "c", "d", "e"]})), "stop");
        assert_eq!(param(Endpoint::Completions, json!({"stop": ["a", 1]})), "stop[1]");
        assert_eq!(param(Endpoint::Completions, json!({"stop": 1})), "stop");
        assert_eq!(param(Endpoint::Completions, json!({"logprobs": 6})), "logprobs");
        assert_eq!(param(Endpoint::Completions, json!({"logprobs": true})), "logprobs");
        assert_eq!(param(Endpoint::Completions, json!({"elbo_samples": 0})), "elbo_samples");
        assert_eq!(param(Endpoint::Chat, json!({"top_logprobs": 2})), "top_logprobs");
        assert_eq!(param(Endpoint::Chat, json!({"logprobs": true, "top_logprobs": 9})), "top_logprobs");
        let chat = parse(Endpoint::Chat, json!({"logprobs": true, "top_logprobs": 2, "echo": true})).unwrap();
        assert_eq!((chat.logprobs, chat.echo), (Some(2), false));
        assert_eq!(parse(Endpoint::Chat, json!({"logprobs": true})).unwrap().logprobs, Some(0));
        assert_eq!(parse(Endpoint::Chat, json!({"logprobs": false})).unwrap().logprobs, None);
        assert_eq!(parse(Endpoint::Completions, json!({"stop": null})).unwrap().stop, Vec::<String>::new());
    }

    #[test]
    fn stop_cuts_at_the_earliest_sequence() {
        let stop = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(stop_at("one. two\nthree", &stop(&["\n", "."])), Some(3));
        assert_eq!(stop_at("one two", &stop(&["x", ""])), None);
        assert_eq!(stop_at("stop here", &stop(&["stop"])), Some(0));
    }
}
