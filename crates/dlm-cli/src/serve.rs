//! `dlm serve`: loads a model once and serves it over an OpenAI-compatible HTTP API with
//! streamed denoising and continuous batching (the `dlm-server` crate; protocol in
//! docs/serving.md).

use crate::model_dir::ModelArgs;
use anyhow::Context;
use dlm_diffusion::{LENGTH_PREDICTOR_WEIGHTS, LengthPredictor};
use dlm_models::MaskedLm;
use dlm_server::{Access, ApiKey, ChatTemplate, Limits, ServedModel, ServerConfig, read_key_file};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port, printed at start)
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Requests waiting to join the batch; more are answered 429 at once
    #[arg(long, default_value_t = Limits::default().queue_size)]
    queue_size: usize,
    /// Largest request body in bytes; larger is answered 413
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Largest max_tokens (generation length) a request may ask for
    #[arg(long, default_value_t = Limits::default().max_tokens)]
    max_tokens: usize,
    /// Largest number of denoising steps a request may ask for
    #[arg(long, default_value_t = Limits::default().max_steps)]
    max_steps: usize,
    /// Largest n (choices per prompt)
    #[arg(long, default_value_t = Limits::default().max_n)]
    max_n: usize,
    /// Largest number of batch rows one request may need (prompts × n × length_beam)
    #[arg(long, default_value_t = Limits::default().max_request_rows)]
    max_request_rows: usize,
    /// Rows denoised together in one forward pass
    #[arg(long, default_value_t = Limits::default().max_batch_rows)]
    max_batch_rows: usize,
    /// Serve one request at a time instead of batching continuously (for comparison)
    #[arg(long)]
    no_batching: bool,
    /// Seconds in-flight requests may take to finish after SIGTERM / Ctrl-C
    #[arg(long, default_value_t = Limits::default().shutdown_grace.as_secs())]
    shutdown_grace: u64,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health (repeatable: any of
    /// the keys; also from --api-key-file and the DLM_API_KEY environment variable)
    #[arg(long = "api-key", value_name = "KEY")]
    api_keys: Vec<ApiKey>,
    /// A file of API keys, one per line (blank lines and # comments ignored)
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// Serve GET /metrics without a key
    #[arg(long)]
    public_metrics: bool,
    /// Serve the playground page (GET /) without a key (its requests still need one)
    #[arg(long)]
    public_playground: bool,
    /// Monte-Carlo samples of the ELBO when a request scores its prompt (echo + logprobs)
    /// and gives no elbo_samples
    #[arg(long, default_value_t = Limits::default().elbo_samples)]
    elbo_samples: usize,
    /// Largest elbo_samples a request may ask for
    #[arg(long, default_value_t = Limits::default().max_elbo_samples)]
    max_elbo_samples: usize,
    /// The sampler of requests that name no `strategy` (their `strategy` field still
    /// chooses): e.g. llada for LLaDA and Dream, whose OpenAI clients send none
    #[arg(long, value_enum, default_value = "reparam-uncond")]
    strategy: crate::sampler_args::StrategyArg,
    /// Most stop sequences in one request
    #[arg(long, default_value_t = Limits::default().max_stop)]
    max_stop: usize,
    /// MiB the KV caches of running requests (`cache` prefix, dual, refresh:R, reuse:R) may take
    /// together; a request that needs more than is free waits its turn, one that needs
    /// more than all of it gets 429
    #[arg(long, value_name = "MIB", default_value_t = Limits::default().kv_cache_budget >> 20)]
    kv_cache_budget_mb: usize,
}

/// The keys from --api-key, --api-key-file and DLM_API_KEY, and the public endpoints.
fn access(args: &Args) -> anyhow::Result<Access> {
    let mut keys = args.api_keys.clone();
    if let Some(file) = &args.api_key_file {
        keys.extend(read_key_file(file)?);
    }
    if let Some(key) = std::env::var("DLM_API_KEY").ok().and_then(|k| k.parse::<ApiKey>().ok()) {
        keys.push(key);
    }
    let mut access = Access::with_keys(&keys);
    access.public_metrics = args.public_metrics;
    access.public_playground = args.public_playground;
    if access.requires_key() {
        tracing::info!("API keys: {} (every endpoint but /health needs one)", keys.len());
    }
    Ok(access)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let limits = Limits {
        queue_size: args.queue_size,
        max_body_bytes: args.max_body_bytes,
        max_tokens: args.max_tokens,
        max_steps: args.max_steps,
        max_n: args.max_n,
        max_request_rows: args.max_request_rows,
        max_batch_rows: args.max_batch_rows,
        continuous_batching: !args.no_batching,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        max_stop: args.max_stop,
        elbo_samples: args.elbo_samples,
        max_elbo_samples: args.max_elbo_samples,
        default_strategy: args.strategy.into(),
        kv_cache_budget: args.kv_cache_budget_mb.saturating_mul(1 << 20),
    };
    limits.validate()?;
    let access = access(&args)?;
    let loaded = args.model.load()?;
    let dir = loaded.model.dir().to_path_buf();
    let length_predictor = if dir.join(LENGTH_PREDICTOR_WEIGHTS).exists() {
        let p = LengthPredictor::load(&dir, loaded.model.device())
            .with_context(|| format!("loading the length predictor of {}", dir.display()))?;
        Some(p)
    } else {
        None
    };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "dlm".into());
    tracing::info!(
        "loaded {name}: {} positions, length predictor {}",
        loaded.model.max_sequence_length(),
        if length_predictor.is_some() { "yes" } else { "no (max_tokens sets the length)" }
    );
    let model = ServedModel {
        name,
        template: ChatTemplate::for_model(&dir)?,
        lm: Box::new(loaded.model),
        tokenizer: loaded.tokenizer,
        special: loaded.special,
        length_predictor,
    };
    let config = ServerConfig { host: args.host, port: args.port, limits, access };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(dlm_server::serve(model, config, |addr| {
        // On stdout, so that scripts started with --port 0 can read the port.
        println!("listening on http://{addr} (playground at /, API under /v1)");
    }))?;
    tracing::info!("stopped");
    Ok(())
}
