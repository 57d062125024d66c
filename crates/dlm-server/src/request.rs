//! A completion or chat request, checked field by field and turned into what the
//! scheduler runs: per choice a canvas prefix, a length (given, or the length predictor's
//! beam) and a full [`SamplerConfig`] with its own seed.
//!
//! Defaults: `temperature` 0 (argmax, the paper's decoding), `seed` 0, `n` 1, `steps` 10,
//! `strategy` `reparam-uncond`, `schedule` `cosine`, `max_tokens` 16 when the model has no
//! length predictor. Choice `j` of a prompt is seeded with `seed + j`. The prompt forms are
//! in `prompt`, the output options (`stop`, `logprobs`, `echo`, `elbo_samples`) in `options`.

use crate::config::Limits;
use crate::error::ApiError;
use crate::options::{OutputOptions, parse_output};
use crate::params::{Fields, wrong_type};
use crate::prompt::{PromptSpec, completion_prompt, parse_prompts};
use crate::template::ChatTemplate;
use dlm_data::{SpecialTokens, Tokenizer};
use dlm_diffusion::{Cache, Decoding, DiffusionError, DreamAlg, Remasking, SamplerConfig, Schedule, StrategyKnobs, StrategyName};
use serde_json::Value;

/// `max_tokens` when neither it nor a length predictor is there (OpenAI's default).
pub const DEFAULT_MAX_TOKENS: usize = 16;
pub const DEFAULT_STEPS: usize = 10;

/// What the request handlers know about the served model.
pub struct ModelInfo {
    pub name: String,
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
    pub template: ChatTemplate,
    /// The longest canvas the model takes.
    pub max_positions: usize,
    /// Classes of the length predictor, when there is one.
    pub length_classes: Option<usize>,
    pub limits: Limits,
    /// Width of the model's vocabulary (token-id prompts must be below it).
    pub vocab_size: usize,
    /// The special tokens the tokenizer puts before a text (`<s>` / `[CLS]`, or none).
    pub lead: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Chat,
}

/// How long a choice's canvas is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthSpec {
    /// `max_tokens` generation positions.
    Fixed(usize),
    /// The length predictor's `B` most likely lengths, one row each; the best one wins.
    Beam(usize),
}

/// One choice to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceSpec {
    /// Index of its prompt in the request.
    pub prompt: usize,
    /// `<s> prompt` ids.
    pub prefix: Vec<u32>,
    pub length: LengthSpec,
    pub cfg: SamplerConfig,
}

impl ChoiceSpec {
    /// Batch rows this choice takes.
    pub fn rows(&self) -> usize {
        match self.length {
            LengthSpec::Fixed(0) => 0,
            LengthSpec::Fixed(_) => 1,
            LengthSpec::Beam(b) => b,
        }
    }
}

/// A checked generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    pub endpoint: Endpoint,
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with `usage` before `[DONE]`.
    pub include_usage: bool,
    /// Prompt tokens over all prompts (with `<s>`), for `usage`.
    pub prompt_tokens: usize,
    /// Ordered as OpenAI orders choices: prompt by prompt, `n` per prompt.
    pub choices: Vec<ChoiceSpec>,
    /// The prompts, in request order (chat: the rendered conversation).
    pub prompts: Vec<PromptSpec>,
    /// `stop`, `logprobs`, `echo`, `elbo_samples`.
    pub output: OutputOptions,
    /// The request's `seed` (ELBO scoring draws its masks from it).
    pub seed: u64,
}

/// Parses and checks a request body against the model and the limits.
pub fn parse(endpoint: Endpoint, body: &Value, info: &ModelInfo) -> Result<GenRequest, ApiError> {
    let f = Fields::new(body)?;
    let limits = &info.limits;
    let model = f.str("model")?.unwrap_or(&info.name).to_owned();
    let prompts: Vec<PromptSpec> = match endpoint {
        Endpoint::Completions => {
            let inputs = parse_prompts(f.get("prompt"), info.vocab_size)?;
            let many = inputs.len() > 1;
            inputs
                .into_iter()
                .enumerate()
                .map(|(i, input)| {
                    let field = if many { format!("prompt[{i}]") } else { "prompt".to_owned() };
                    completion_prompt(input, &info.tokenizer, &info.special, &info.lead, &field)
                })
                .collect::<Result<_, _>>()?
        }
        Endpoint::Chat => {
            let messages = f.get("messages").ok_or_else(|| ApiError::invalid("messages", "`messages` is required"))?;
            let text = info.template.render(messages)?;
            let prefix = info
                .template
                .prompt_ids(&info.tokenizer, &text, &info.special)
                .map_err(|e| ApiError::invalid("messages", format!("cannot tokenize the prompt: {e}")))?;
            let end = prefix.len();
            vec![PromptSpec { prefix, listed_from: end, scored_from: end, text: None }]
        }
    };
    let output = parse_output(endpoint == Endpoint::Chat, &f, limits)?;
    let stream = f.bool("stream")?.unwrap_or(false);
    let include_usage = match f.get("stream_options") {
        None => false,
        Some(v) => {
            let opts = Fields::new(v).map_err(|_| wrong_type("stream_options", "an object", v))?;
            opts.bool("include_usage")
                .map_err(|_| wrong_type("stream_options.include_usage", "a boolean", v))?
                .unwrap_or(false)
        }
    };
    let n = f.usize_in("n", 1, limits.max_n)?.unwrap_or(1);
    let temperature = f.f64_in("temperature", 0.0, 2.0)?.unwrap_or(0.0);
    let seed = f.seed("seed")?.unwrap_or(0);
    let steps = f.usize_in("steps", 1, limits.max_steps)?.unwrap_or(DEFAULT_STEPS);
    let cfg = sampler_config(&f, steps, temperature, seed, limits)?;
    let max_tokens_field = match (endpoint, f.get("max_completion_tokens")) {
        (Endpoint::Chat, Some(_)) => "max_completion_tokens",
        _ => "max_tokens",
    };
    // `max_tokens: 0` only with `echo` (the prompt scored or repeated, nothing generated).
    let max_tokens = f.usize_in(max_tokens_field, usize::from(!output.echo), limits.max_tokens)?;
    let length = length_spec(&f, max_tokens, info.length_classes)?;
    let mut choices = Vec::with_capacity(prompts.len() * n);
    let mut prompt_tokens = 0;
    for (p, prompt) in prompts.iter().enumerate() {
        let prefix = &prompt.prefix;
        check_fits(endpoint, prefix.len(), length, max_tokens_field, info.max_positions)?;
        prompt_tokens += prefix.len();
        for j in 0..n {
            let cfg = SamplerConfig { seed: seed.wrapping_add(j as u64), ..cfg.clone() };
            choices.push(ChoiceSpec { prompt: p, prefix: prefix.clone(), length, cfg });
        }
    }
    let rows: usize = choices.iter().map(ChoiceSpec::rows).sum();
    if rows > limits.max_request_rows {
        return Err(ApiError::invalid(
            "n",
            format!(
                "this request needs {rows} batch rows (prompts × n × length_beam) but one request may take at most {}",
                limits.max_request_rows
            ),
        ));
    }
    Ok(GenRequest { endpoint, model, stream, include_usage, prompt_tokens, choices, prompts, output, seed })
}

fn prompt_field(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Completions => "prompt",
        Endpoint::Chat => "messages",
    }
}

/// The sampler settings shared by every choice (the seed is set per choice).
fn sampler_config(
    f: &Fields<'_>,
    steps: usize,
    temperature: f64,
    seed: u64,
    limits: &Limits,
) -> Result<SamplerConfig, ApiError> {
    let name = match f.str("strategy")? {
        None => limits.default_strategy,
        Some(s) => StrategyName::parse(s).ok_or_else(|| {
            let names: Vec<&str> = StrategyName::ALL.iter().map(|n| n.as_str()).collect();
            ApiError::invalid("strategy", format!("unknown strategy {s:?}; expected one of {}", names.join(", ")))
        })?,
    };
    let schedule = match f.str("schedule")? {
        None | Some("cosine") => Schedule::Cosine,
        Some("linear") => Schedule::Linear,
        Some(other) => {
            return Err(ApiError::invalid(
                "schedule",
                format!("unknown schedule {other:?}; expected cosine or linear"),
            ));
        }
    };
    let knobs = StrategyKnobs {
        block_length: f.usize_in("block_length", 1, limits.max_tokens)?,
        threshold: f.f64_in("threshold", 0.0, 1.0)?,
        noise_scale: f.f64_in("noise_scale", 0.0, 100.0)?,
        remasking: match f.str("remasking")? {
            None => None,
            Some(r) => Some(Remasking::parse(r).ok_or_else(|| {
                ApiError::invalid("remasking", format!("unknown remasking {r:?}; expected low_confidence or random"))
            })?),
        },
        factor: f.f64_in("factor", f64::MIN_POSITIVE, 1e6)?,
        alg: match f.str("alg")? {
            None => None,
            Some(a) => Some(DreamAlg::parse(a).ok_or_else(|| {
                ApiError::invalid("alg", format!("unknown alg {a:?}; expected origin, maskgit_plus, topk_margin or entropy"))
            })?),
        },
        alg_temp: f.f64_in("alg_temp", 0.0, 100.0)?,
        // OpenAI's `top_p` is accepted and ignored by the other strategies (docs/serving.md).
        top_p: if name == StrategyName::Dream { f.f64_in("top_p", 0.0, 1.0)? } else { None },
        top_k: f.usize_in("top_k", 1, u32::MAX as usize)?,
    };
    if let Some((a, b)) = name.conflicting_knobs(&knobs) {
        return Err(ApiError::invalid(b, format!("`{a}` and `{b}` are alternatives for strategy {}: give one", name.as_str())));
    }
    if let Some(knob) = name.unused_knobs(&knobs).first() {
        let users: Vec<&str> =
            StrategyName::ALL.iter().filter(|s| !s.unused_knobs(&knobs).contains(knob)).map(|s| s.as_str()).collect();
        let field = knob.replace('-', "_");
        return Err(ApiError::invalid(
            &field,
            format!("`{field}` applies only to strategy {}, not {}", users.join(" and "), name.as_str()),
        ));
    }
    let cache = match f.str("cache")? {
        None => Cache::None,
        Some(c) => Cache::parse(c)
            .ok_or_else(|| ApiError::invalid("cache", format!("unknown cache {c:?}; expected {}", Cache::EXPECTED)))?,
    };
    let decoding = if temperature > 0.0 { Decoding::Sample { temperature } } else { Decoding::Argmax };
    let cfg = SamplerConfig { steps, strategy: name.build(schedule, knobs), decoding, seed, record_trajectory: false, cache };
    cfg.validate().map_err(|e| diffusion_error(&e))?;
    Ok(cfg)
}

fn length_spec(f: &Fields<'_>, max_tokens: Option<usize>, classes: Option<usize>) -> Result<LengthSpec, ApiError> {
    let beam = f.usize_in("length_beam", 1, classes.unwrap_or(usize::MAX))?;
    match (max_tokens, beam, classes) {
        (Some(_), Some(_), _) => Err(ApiError::invalid(
            "length_beam",
            "`length_beam` applies only when `max_tokens` is omitted (the length predictor then chooses the length)",
        )),
        (_, Some(_), None) => Err(ApiError::invalid(
            "length_beam",
            "the model has no length predictor (length_predictor.safetensors), so `length_beam` cannot be used; give max_tokens",
        )),
        (Some(m), None, _) => Ok(LengthSpec::Fixed(m)),
        (None, beam, Some(_)) => Ok(LengthSpec::Beam(beam.unwrap_or(1))),
        (None, None, None) => Ok(LengthSpec::Fixed(DEFAULT_MAX_TOKENS)),
    }
}

/// `<s> prompt`, the generation and `</s>` must fit the model's positions.
fn check_fits(endpoint: Endpoint, prefix: usize, length: LengthSpec, field: &str, max: usize) -> Result<(), ApiError> {
    match length {
        LengthSpec::Fixed(l) if prefix + l + 1 > max => Err(ApiError::invalid(
            field,
            format!(
                "the prompt takes {prefix} tokens (with <s>); with {field} = {l} and </s> that is {} positions, but the \
                 model allows {max}",
                prefix + l + 1
            ),
        )),
        LengthSpec::Beam(_) if prefix + 2 > max => Err(ApiError::invalid(
            prompt_field(endpoint),
            format!("the prompt takes {prefix} tokens, leaving no room to generate within the model's {max} positions"),
        )),
        _ => Ok(()),
    }
}

/// A sampler error as the client's 400 (or 500 when it is the model's fault).
pub fn diffusion_error(e: &DiffusionError) -> ApiError {
    let param = match e {
        DiffusionError::TooLong { .. } | DiffusionError::EmptyGeneration => "max_tokens",
        DiffusionError::PromptTooLong { .. } => "prompt",
        DiffusionError::ZeroSteps => "steps",
        DiffusionError::InvalidConfig(m) if m.starts_with("cache") || m.contains("KV cache") => "cache",
        DiffusionError::Model(dlm_models::ModelError::Unsupported(m)) if m.contains("cached forward") => "cache",
        DiffusionError::LengthBeamTooLarge { .. } => "length_beam",
        DiffusionError::InvalidConfig(m) if m.contains("multiple of the number of blocks") => "steps",
        DiffusionError::InvalidConfig(m) if m.contains("temperature") => "temperature",
        DiffusionError::InvalidConfig(m) if m.contains("threshold") => "threshold",
        DiffusionError::InvalidConfig(m) if m.contains("block length") => "block_length",
        DiffusionError::InvalidConfig(m) if m.contains("factor") => "factor",
        DiffusionError::InvalidConfig(m) if m.contains("alg-temp") => "alg_temp",
        DiffusionError::InvalidConfig(m) if m.contains("top-p") => "top_p",
        DiffusionError::InvalidConfig(m) if m.contains("top-k") => "top_k",
        DiffusionError::InvalidConfig(_) => "strategy",
        _ => return ApiError::internal(e.to_string()),
    };
    ApiError::invalid(param, e.to_string())
}
