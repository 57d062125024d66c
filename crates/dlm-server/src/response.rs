//! The OpenAI response objects: completions and chat completions, whole or as stream
//! chunks, with `usage`, and the per-step `diffusion` extension of streamed chunks.
//!
//! A step chunk carries an empty `text` (completions) or `delta.content` (chat) and
//! `"diffusion": {"step", "steps", "masked", "canvas", "cells"}`, on the chunk and on its
//! choice. `canvas` is the generated text so far with [`MASK_MARKER`] where still masked;
//! `cells` has one entry per generation position: its token piece, or null while masked.
//! Canvases never go into `text`/`delta.content`, which clients concatenate. What a finished
//! choice carries (text, finish reason, `logprobs`, `elbo`) is built in `output`.

use crate::output::Finished;
use crate::request::{Endpoint, GenRequest};
use crate::scheduler::ChoiceOutput;
use dlm_data::Tokenizer;
use dlm_diffusion::render_canvas;
use serde_json::{Value, json};

/// How a still-masked position shows in `canvas` (as in `dlm generate --trajectory`).
pub const MASK_MARKER: &str = "▢";

/// Fields every object of one response shares.
pub struct Header<'a> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
    pub endpoint: Endpoint,
}

impl Header<'_> {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Completions, _) => "text_completion",
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
        }
    }

    fn wrap(&self, chunk: bool, choices: Vec<Value>) -> Value {
        json!({"id": self.id, "object": self.object(chunk), "created": self.created, "model": self.model, "choices": choices})
    }

    /// A finished choice: its text, finish reason, `logprobs` and `elbo`.
    fn finished(&self, chunk: bool, index: usize, f: &Finished) -> Value {
        let mut v = self.choice(chunk, index, &f.text, Some(f.finish_reason));
        if let Some(l) = &f.logprobs {
            v["logprobs"] = l.clone();
        }
        if let Some(e) = &f.elbo {
            v["elbo"] = e.clone();
        }
        v
    }

    /// A choice whose text is `text`: `text` for completions; `message` (whole) or `delta`
    /// (chunk) for chat.
    fn choice(&self, chunk: bool, index: usize, text: &str, finish_reason: Option<&str>) -> Value {
        match (self.endpoint, chunk) {
            (Endpoint::Completions, _) => {
                json!({"index": index, "text": text, "logprobs": null, "finish_reason": finish_reason})
            }
            (Endpoint::Chat, false) => json!({
                "index": index,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": finish_reason,
            }),
            (Endpoint::Chat, true) => {
                json!({"index": index, "delta": {"content": text}, "logprobs": null, "finish_reason": finish_reason})
            }
        }
    }
}

fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens})
}

/// Completion tokens: every generation position of every choice.
pub fn completion_tokens(outs: &[ChoiceOutput]) -> usize {
    outs.iter().map(|o| o.generated.len()).sum()
}

/// The whole (non-streamed) response.
pub fn whole(h: &Header<'_>, request: &GenRequest, finished: &[Finished], completion: usize) -> Value {
    let choices = finished.iter().enumerate().map(|(i, f)| h.finished(false, i, f)).collect();
    let mut v = h.wrap(false, choices);
    v["usage"] = usage(request.prompt_tokens, completion);
    v
}

/// The per-step chunk of choice `index`.
pub fn step_chunk(h: &Header<'_>, index: usize, diffusion: Value) -> Value {
    let mut choice = h.choice(true, index, "", None);
    choice["diffusion"] = diffusion.clone();
    let mut v = h.wrap(true, vec![choice]);
    v["diffusion"] = diffusion;
    v
}

/// The `diffusion` object of one step.
pub fn diffusion(
    tokenizer: &Tokenizer,
    mask: u32,
    (step, steps, masked): (usize, usize, usize),
    generated: &[u32],
) -> Value {
    let decode = |run: &[u32]| tokenizer.decode(run, true).unwrap_or_default();
    let canvas = render_canvas(generated, mask, decode, MASK_MARKER);
    let cells: Vec<Value> = generated
        .iter()
        .map(|&t| {
            if t == mask {
                Value::Null
            } else {
                Value::String(tokenizer.id_to_token(t).unwrap_or_else(|| format!("#{t}")))
            }
        })
        .collect();
    json!({"step": step, "steps": steps, "masked": masked, "canvas": canvas, "cells": cells})
}

/// The first chunk of a chat stream (the assistant role, no content yet).
pub fn role_chunk(h: &Header<'_>, index: usize) -> Value {
    h.wrap(true, vec![json!({"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})])
}

/// The last chunk of a choice: its whole text, finish reason and `logprobs`.
pub fn final_chunk(h: &Header<'_>, index: usize, finished: &Finished) -> Value {
    h.wrap(true, vec![h.finished(true, index, finished)])
}

/// `stream_options.include_usage`: a chunk with no choices and the usage.
pub fn usage_chunk(h: &Header<'_>, request: &GenRequest, completion: usize) -> Value {
    let mut v = h.wrap(true, Vec::new());
    v["usage"] = usage(request.prompt_tokens, completion);
    v
}
