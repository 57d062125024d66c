//! What the server is started with: the model it serves (loaded once, by the caller) and
//! its limits.

use crate::auth::Access;
use crate::error::ServerError;
use crate::template::ChatTemplate;
use dlm_data::{SpecialTokens, Tokenizer};
use dlm_diffusion::{LengthPredictor, StrategyName};
use dlm_models::MaskedLm;
use std::time::Duration;

/// The model behind the endpoints.
pub struct ServedModel {
    /// The id `/v1/models` lists (the model directory's name).
    pub name: String,
    /// Owned by the scheduler thread once the server starts.
    pub lm: Box<dyn MaskedLm + Send>,
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
    /// The directory's length predictor, when it has one.
    pub length_predictor: Option<LengthPredictor>,
    pub template: ChatTemplate,
}

/// Bounds on what one request and the whole server may take.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Requests waiting to join the batch; one more is answered 429 at once.
    pub queue_size: usize,
    /// Largest request body in bytes; larger is answered 413.
    pub max_body_bytes: usize,
    /// Largest `max_tokens` (generation length).
    pub max_tokens: usize,
    /// Largest `steps`.
    pub max_steps: usize,
    /// Largest `n`.
    pub max_n: usize,
    /// Largest number of batch rows one request may need (`prompts × n × length_beam`).
    pub max_request_rows: usize,
    /// Rows denoised together in one step.
    pub max_batch_rows: usize,
    /// Continuous batching: new requests join the running batch at the next step. Off:
    /// one request at a time.
    pub continuous_batching: bool,
    /// After SIGTERM / Ctrl-C, in-flight work may finish for this long; then it is cancelled.
    pub shutdown_grace: Duration,
    /// Most `stop` sequences in one request (OpenAI's 4).
    pub max_stop: usize,
    /// Monte-Carlo samples of ELBO scoring (`echo` + `logprobs`) when a request gives no
    /// `elbo_samples`.
    pub elbo_samples: usize,
    /// Largest `elbo_samples`.
    pub max_elbo_samples: usize,
    /// Bytes the KV caches of all running requests (`cache` prefix, dual, refresh:R, reuse:R) may
    /// take together, counted as each row's whole cache from its admission on. A request
    /// that needs more than what is free waits (first come, first served); one that needs
    /// more than all of it is answered 429.
    pub kv_cache_budget: usize,
    /// The sampler of a request that names no `strategy` (`dlm serve --strategy`; e.g.
    /// `llada` for LLaDA and Dream, whose clients send none).
    pub default_strategy: StrategyName,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_size: 256,
            max_body_bytes: 1_000_000,
            max_tokens: 512,
            max_steps: 1000,
            max_n: 16,
            max_request_rows: 64,
            max_batch_rows: 64,
            continuous_batching: true,
            shutdown_grace: Duration::from_secs(10),
            max_stop: 4,
            elbo_samples: 32,
            max_elbo_samples: 1024,
            kv_cache_budget: 4 << 30,
            default_strategy: StrategyName::ReparamUncond,
        }
    }
}

/// Where to listen, with which limits, and who may call what.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub limits: Limits,
    pub access: Access,
}

impl Limits {
    /// Errors on limits that would make the server refuse everything.
    pub fn validate(&self) -> Result<(), ServerError> {
        for (name, v) in [
            ("queue size", self.queue_size),
            ("max body bytes", self.max_body_bytes),
            ("max tokens", self.max_tokens),
            ("max steps", self.max_steps),
            ("max n", self.max_n),
            ("max request rows", self.max_request_rows),
            ("max batch rows", self.max_batch_rows),
            ("ELBO samples", self.elbo_samples),
            ("max ELBO samples", self.max_elbo_samples),
            ("KV cache budget", self.kv_cache_budget),
        ] {
            if v == 0 {
                return Err(ServerError::Config(format!("{name} must be at least 1")));
            }
        }
        if self.elbo_samples > self.max_elbo_samples {
            return Err(ServerError::Config(format!(
                "the default ELBO samples ({}) exceed the largest a request may ask for ({})",
                self.elbo_samples, self.max_elbo_samples
            )));
        }
        Ok(())
    }
}
