//! Server-sent events for `"stream": true`: for chat a first chunk with the assistant
//! role; then one chunk per denoising step of each choice (empty text, the `diffusion`
//! extension); then per choice a final chunk with the whole text and `finish_reason`;
//! with `stream_options.include_usage` a usage chunk; then `data: [DONE]`. A failure
//! after the stream started is sent as an `{"error": …}` chunk before `[DONE]`.
//!
//! The stream reads the scheduler's events; when the client goes away the stream is
//! dropped, its receiver closes, and the scheduler frees the request's rows.

use crate::app::{App, unix_now};
use crate::error::ApiError;
use crate::output::finish_choices;
use crate::request::{Endpoint, GenRequest};
use crate::response::{self, Header};
use crate::scheduler::Event;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::Value;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

struct StreamState {
    app: Arc<App>,
    request: GenRequest,
    id: String,
    created: u64,
    events: UnboundedReceiver<Event>,
    /// Chunks ready to send.
    ready: VecDeque<String>,
    finished: bool,
}

impl StreamState {
    fn header(&self) -> Header<'_> {
        Header { id: &self.id, created: self.created, model: &self.request.model, endpoint: self.request.endpoint }
    }

    fn push(&mut self, v: Value) {
        self.ready.push_back(v.to_string());
    }

    /// Turns one scheduler event into chunks; `None` when the stream should end.
    fn on_event(&mut self, event: Option<Event>) {
        let info = &self.app.info;
        let chunks: Vec<Value> = match event {
            Some(Event::Step { choice, step, steps, masked, generated }) => {
                let d = response::diffusion(&info.tokenizer, info.special.mask, (step, steps, masked), &generated);
                vec![response::step_chunk(&self.header(), choice, d)]
            }
            Some(Event::Done(outs)) => {
                let h = self.header();
                let finished = finish_choices(info, &self.request, &outs);
                let mut v: Vec<Value> =
                    finished.iter().enumerate().map(|(i, f)| response::final_chunk(&h, i, f)).collect();
                if self.request.include_usage {
                    v.push(response::usage_chunk(&h, &self.request, response::completion_tokens(&outs.choices)));
                }
                self.finished = true;
                v
            }
            Some(Event::Failed(e)) => {
                self.finished = true;
                vec![e.body()]
            }
            Some(Event::Admitted) => Vec::new(),
            None => {
                self.finished = true;
                vec![ApiError::unavailable("the scheduler stopped before finishing").body()]
            }
        };
        for c in chunks {
            self.push(c);
        }
        if self.finished {
            self.ready.push_back("[DONE]".to_owned());
        }
    }
}

/// The SSE response of an admitted streamed request.
pub fn sse_response(app: Arc<App>, request: GenRequest, id: String, events: UnboundedReceiver<Event>) -> Response {
    let mut state =
        StreamState { app, request, id, created: unix_now(), events, ready: VecDeque::new(), finished: false };
    if state.request.endpoint == Endpoint::Chat {
        for i in 0..state.request.choices.len() {
            let chunk = response::role_chunk(&state.header(), i);
            state.push(chunk);
        }
    }
    let body = stream::unfold(state, |mut s| async move {
        loop {
            if let Some(data) = s.ready.pop_front() {
                return Some((Ok::<_, Infallible>(SseEvent::default().data(data)), s));
            }
            if s.finished {
                return None;
            }
            let event = s.events.recv().await;
            s.on_event(event);
        }
    });
    Sse::new(body).into_response()
}
