//! What a finished choice returns: its text (after the prompt with `echo`; cut before the
//! first `stop` sequence), its finish reason, and with `logprobs` the per-token
//! log-probabilities in the endpoint's OpenAI shape:
//!
//! * completions: `{"tokens", "token_logprobs", "top_logprobs", "text_offset"}`, one entry
//!   per token: with `echo` first the prompt's tokens (the first one's log-probability and
//!   alternatives `null`, as OpenAI's; the others their ELBO terms, `elbo`), then the
//!   generated ones (their log-probability at the step that unmasked them). `top_logprobs`
//!   maps token text to log-probability: the `logprobs` most likely tokens and the token
//!   itself (so up to `logprobs + 1` entries, as OpenAI's);
//! * chat: `{"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token",
//!   "logprob", "bytes"}]}], "refusal": null}` for the generated tokens.
//!
//! Token texts are the tokenizer's decoding of each token in context (the difference of
//! the decoded text with and without it), `text_offset` counts characters of that decoded
//! text; the generated tokens listed are those whose text starts before the cut.

use crate::options::stop_at;
use crate::request::{Endpoint, GenRequest, ModelInfo};
use crate::scheduler::{ChoiceOutput, Outputs};
use dlm_data::Tokenizer;
use dlm_diffusion::ElboTerms;
use serde_json::{Map, Value, json};

/// OpenAI's log-probability for a token that has none (here: a slot still masked at the end).
const NO_LOGPROB: f64 = -9999.0;

/// A finished choice as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub text: String,
    pub finish_reason: &'static str,
    /// The `logprobs` object, when asked.
    pub logprobs: Option<Value>,
    /// The `elbo` extension of a scored prompt: `{"samples", "seed", "tokens", "total"}`.
    pub elbo: Option<Value>,
}

/// Every choice of a finished request, in order.
pub fn finish_choices(info: &ModelInfo, request: &GenRequest, outputs: &Outputs) -> Vec<Finished> {
    outputs
        .choices
        .iter()
        .zip(&request.choices)
        .map(|(out, spec)| {
            let score = outputs.scores.get(spec.prompt).and_then(Option::as_ref);
            finish_choice(info, request, spec.prompt, out, score)
        })
        .collect()
}

/// Decoded text pieces of `ids` in context and the character offset of each, from `start`.
fn pieces(tokenizer: &Tokenizer, ids: &[u32], start: usize) -> (Vec<String>, Vec<usize>) {
    let mut out = Vec::with_capacity(ids.len());
    let mut offsets = Vec::with_capacity(ids.len());
    let mut before = String::new();
    for i in 0..ids.len() {
        let now = tokenizer.decode(&ids[..=i], true).unwrap_or_default();
        let piece = match now.strip_prefix(before.as_str()) {
            Some(rest) => rest.to_owned(),
            None => alone(tokenizer, ids[i]),
        };
        offsets.push(start + before.chars().count().min(now.chars().count()));
        out.push(piece);
        before = now;
    }
    (out, offsets)
}

/// The text of one token on its own (its vocabulary entry when that decodes to nothing,
/// e.g. a special token).
fn alone(tokenizer: &Tokenizer, id: u32) -> String {
    let text = tokenizer.decode(&[id], true).unwrap_or_default();
    if text.is_empty() { tokenizer.id_to_token(id).unwrap_or_else(|| format!("#{id}")) } else { text }
}

/// `{token text: log p}` of a token and its alternatives; on equal texts the larger value.
fn top_map(tokenizer: &Tokenizer, own: (&str, f32), top: &[(u32, f32)]) -> Value {
    let mut map = Map::new();
    let mut put = |key: String, v: f32| {
        let keep = map.get(&key).and_then(Value::as_f64).is_none_or(|old| (v as f64) > old);
        if keep {
            map.insert(key, json!(v as f64));
        }
    };
    put(own.0.to_owned(), own.1);
    for &(id, v) in top {
        put(alone(tokenizer, id), v);
    }
    Value::Object(map)
}

fn finish_choice(
    info: &ModelInfo,
    request: &GenRequest,
    prompt: usize,
    out: &ChoiceOutput,
    score: Option<&ElboTerms>,
) -> Finished {
    let tokenizer = &info.tokenizer;
    let special = info.special;
    let generated_text = tokenizer.decode(&out.generated, true).unwrap_or_default();
    let ended = out.predicted_length || out.generated.iter().any(|&t| t == special.eos || t == special.pad);
    let cut = stop_at(&generated_text, &request.output.stop);
    let finish_reason = if cut.is_some() || ended { "stop" } else { "length" };
    let kept = &generated_text[..cut.unwrap_or(generated_text.len())];
    let spec = &request.prompts[prompt];
    let listed = &spec.prefix[spec.listed_from..];
    let prompt_text = match (request.output.echo, &spec.text) {
        (false, _) => String::new(),
        (true, Some(text)) => text.clone(),
        (true, None) => tokenizer.decode(listed, true).unwrap_or_default(),
    };
    let text = format!("{prompt_text}{kept}");
    let elbo =
        score.map(|s| json!({"samples": s.samples, "seed": request.seed, "tokens": s.terms.len(), "total": s.total()}));
    let Some(n) = request.output.logprobs else {
        return Finished { text, finish_reason, logprobs: None, elbo };
    };
    // The generated tokens whose text starts before the cut.
    let (gen_pieces, gen_offsets) = pieces(tokenizer, &out.generated, 0);
    let kept_chars = kept.chars().count();
    let keep = |j: usize| cut.is_none() || gen_offsets[j] < kept_chars;
    let slot = |j: usize| out.logprobs.as_ref().and_then(|l| l.get(j)).and_then(Option::as_ref);
    let logprobs = match request.endpoint {
        Endpoint::Chat => {
            let content: Vec<Value> = (0..out.generated.len())
                .filter(|&j| keep(j))
                .map(|j| {
                    let entry = |token: &str, logprob: f64| json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()});
                    let (logprob, top) = match slot(j) {
                        Some(l) => (l.logprob as f64, l.top.as_slice()),
                        None => (NO_LOGPROB, &[][..]),
                    };
                    let alternatives: Vec<Value> = top.iter().take(n).map(|&(id, v)| entry(&alone(tokenizer, id), v as f64)).collect();
                    let mut e = entry(&gen_pieces[j], logprob);
                    e["top_logprobs"] = Value::Array(alternatives);
                    e
                })
                .collect();
            json!({"content": content, "refusal": null})
        }
        Endpoint::Completions => {
            let mut tokens = Vec::new();
            let mut token_logprobs = Vec::new();
            let mut top_logprobs = Vec::new();
            let mut text_offset = Vec::new();
            if request.output.echo {
                let (prompt_pieces, prompt_offsets) = pieces(tokenizer, listed, 0);
                for (k, piece) in prompt_pieces.iter().enumerate() {
                    let position = spec.listed_from + k;
                    let term = (k > 0 && position >= spec.scored_from)
                        .then(|| {
                            score.map(|s| (s.terms[position - spec.scored_from], &s.top[position - spec.scored_from]))
                        })
                        .flatten();
                    tokens.push(json!(piece));
                    text_offset.push(json!(prompt_offsets[k]));
                    match term {
                        Some((v, top)) => {
                            token_logprobs.push(json!(v as f64));
                            top_logprobs.push(top_map(tokenizer, (piece, v), &top[..top.len().min(n.max(1))]));
                        }
                        None => {
                            token_logprobs.push(Value::Null);
                            top_logprobs.push(Value::Null);
                        }
                    }
                }
            }
            let start = prompt_text.chars().count();
            for j in (0..out.generated.len()).filter(|&j| keep(j)) {
                tokens.push(json!(gen_pieces[j]));
                text_offset.push(json!(start + gen_offsets[j]));
                match slot(j) {
                    Some(l) => {
                        token_logprobs.push(json!(l.logprob as f64));
                        top_logprobs.push(top_map(
                            tokenizer,
                            (&gen_pieces[j], l.logprob),
                            &l.top[..l.top.len().min(n)],
                        ));
                    }
                    None => {
                        token_logprobs.push(json!(NO_LOGPROB));
                        top_logprobs.push(json!({}));
                    }
                }
            }
            json!({"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs, "text_offset": text_offset})
        }
    };
    Finished { text, finish_reason, logprobs: Some(logprobs), elbo }
}
