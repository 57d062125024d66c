//! `dlm generate`: text by iterative unmasking (SPEC §4) from one prompt, with an oracle
//! length (`--length`) or the model directory's length predictor (`--length-beam`, SPEC §5);
//! optionally the whole denoising trajectory, in the terminal, as JSON or as an SVG picture.
//! A prompt given as token ids (`--prompt-ids`) needs no tokenizer; the text is then absent.
//! With `--chat` the prompt is one user message through the model's chat template
//! (`tokenizer_config.json`, `dlm_data::ChatTemplate`), tokenized without added special
//! tokens.

use crate::model_dir::{ModelArgs, chat_template, special_ids_without_tokenizer};
use dlm_data::{ChatMessage, Tokenizer, canvas_prefix, chat_prefix};
use anyhow::Context;
use dlm_diffusion::{
    BeamChoice, Cache, Canvas, Decoding, Denoised, DreamAlg, LENGTH_PREDICTOR_WEIGHTS, LengthPredictor, Remasking, SamplerConfig,
    Schedule, SpecialIds, StrategyKnobs, StrategyName, denoise, generate_with_length_beam, render_canvas, trajectory_svg,
};
use dlm_models::MaskedLm;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;

/// `--strategy` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StrategyArg {
    /// Reparameterized top-k; the k lowest-scoring positions are re-masked (the paper's)
    ReparamUncond,
    /// Reparameterized top-k; a decoded token is re-masked only if re-predicted with a lower score
    ReparamCond,
    /// reparam-uncond ranking with Gumbel noise (--noise-scale · rate)
    Stochastic,
    /// Unmask each masked position with probability 1/(K-s+1)
    Cmlm,
    /// Fill the leftmost mask each step
    Ar,
    /// LLaDA's generate(): low-confidence (or --remasking random) unmasking, block by block (--block-length)
    Llada,
    /// Fast-dLLM: in the current block, unmask every position with probability ≥ --threshold (or by --factor; at least one); adaptive steps
    FastDllm,
    /// Dream's diffusion_generate(): --alg chooses the positions unmasked at each step (--alg-temp, --top-p, --top-k)
    Dream,
}

/// `--remasking` values (llada).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RemaskingArg {
    /// Rank masked positions by the probability of their predicted token
    LowConfidence,
    /// Rank masked positions by a uniform draw (seeded; not torch's random stream)
    Random,
}

/// `--alg` values (dream).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AlgArg {
    /// Each masked position is unmasked with probability 1 − s/t (seeded)
    Origin,
    /// Confidence: the probability of the predicted token
    MaskgitPlus,
    /// Confidence: top-1 minus top-2 probability
    TopkMargin,
    /// Confidence: negative entropy of the distribution
    Entropy,
}

/// `--cache` values: `none`, `prefix`, `dual` (llada, fast-dllm) or `refresh:R` (every
/// strategy).
fn parse_cache(s: &str) -> Result<Cache, String> {
    Cache::parse(s).ok_or_else(|| format!("unknown cache {s:?}: expected none, prefix, dual or refresh:R (R ≥ 1)"))
}

impl From<StrategyArg> for StrategyName {
    fn from(s: StrategyArg) -> StrategyName {
        match s {
            StrategyArg::ReparamUncond => StrategyName::ReparamUncond,
            StrategyArg::ReparamCond => StrategyName::ReparamCond,
            StrategyArg::Stochastic => StrategyName::Stochastic,
            StrategyArg::Cmlm => StrategyName::Cmlm,
            StrategyArg::Ar => StrategyName::Ar,
            StrategyArg::Llada => StrategyName::Llada,
            StrategyArg::FastDllm => StrategyName::FastDllm,
            StrategyArg::Dream => StrategyName::Dream,
        }
    }
}

/// `--schedule` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ScheduleArg {
    Cosine,
    Linear,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt text (it should end with its cue, e.g. " English: " or " A:")
    #[arg(long, required_unless_present = "prompt_ids", conflicts_with = "prompt_ids")]
    prompt: Option<String>,
    /// The prompt as token ids, comma separated: `<s> prompt` (a final `</s>` is dropped).
    /// No tokenizer needed; the output then has ids but no text
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    prompt_ids: Option<Vec<u32>>,
    /// Instruction-tuned models (LLaDA-8B-Instruct, Dream-v0-Instruct-7B): apply the model's
    /// chat template (tokenizer_config.json's chat_template) to --prompt as one user
    /// message, with the assistant's turn opened, and tokenize the result without adding
    /// special tokens (the template writes them)
    #[arg(long)]
    chat: bool,
    /// With --prompt-ids and no tokenizer: the mask token's id (default: config.json's
    /// mask_token_id; bos, eos and pad come from config.json)
    #[arg(long, value_name = "N", requires = "prompt_ids")]
    mask_id: Option<u32>,
    /// Number of tokens to generate (oracle length)
    #[arg(long, conflicts_with = "length_beam")]
    length: Option<usize>,
    /// Try the B most likely lengths of the model's length predictor and keep the best
    #[arg(long)]
    length_beam: Option<usize>,
    /// Denoising iterations K
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, value_enum, default_value = "reparam-uncond")]
    strategy: StrategyArg,
    /// Unmasking schedule of the reparameterized strategies
    #[arg(long, value_enum, default_value = "cosine")]
    schedule: ScheduleArg,
    /// Sample tokens at this temperature instead of taking the argmax (0 = argmax)
    #[arg(long)]
    temperature: Option<f64>,
    /// Generation positions per semi-autoregressive block, filled left to right (llada,
    /// fast-dllm). Default for llada: one block, the whole generation (as LLaDA's
    /// generate(), whose block length defaults to the generation length; its example uses
    /// 32, and --steps must be a multiple of the number of blocks); for fast-dllm: 32 (the
    /// block size of Fast-dLLM's evaluations)
    #[arg(long, value_name = "N")]
    block_length: Option<usize>,
    /// fast-dllm: unmask every position of the block whose probability is at least P
    /// (default 0.9, Fast-dLLM's threshold)
    #[arg(long, value_name = "P")]
    threshold: Option<f64>,
    /// stochastic: scale S of the Gumbel noise added to the scores before ranking, times the
    /// schedule's rate (default 1.0, the released RDM code's `stochastic1.0`)
    #[arg(long, value_name = "S")]
    noise_scale: Option<f64>,
    /// llada: how masked positions are ranked (default low-confidence; LLaDA's `remasking`)
    #[arg(long, value_enum)]
    remasking: Option<RemaskingArg>,
    /// fast-dllm: factor-based parallel decoding instead of --threshold: unmask the n most
    /// confident positions of the block while (n + 1)(1 − p_n) ≤ F (Fast-dLLM's
    /// get_transfer_index_dynamic)
    #[arg(long, value_name = "F", conflicts_with = "threshold")]
    factor: Option<f64>,
    /// dream: how the positions unmasked at each step are chosen (default entropy, as in
    /// Dream's README)
    #[arg(long, value_enum)]
    alg: Option<AlgArg>,
    /// dream: draw the unmasked positions from softmax(confidence / T) instead of taking
    /// the most confident (0: the most confident)
    #[arg(long, value_name = "T")]
    alg_temp: Option<f64>,
    /// dream: nucleus filtering of each position's distribution before tokens and
    /// confidences are read off
    #[arg(long, value_name = "P")]
    top_p: Option<f64>,
    /// dream: keep only the K most likely tokens of each position's distribution
    #[arg(long, value_name = "K")]
    top_k: Option<usize>,
    /// Reuse keys and values between steps: none (every step a full forward); prefix or
    /// dual (llada, fast-dllm: Fast-dLLM's generate_with_prefix_cache /
    /// generate_with_dual_cache); refresh:R (every strategy: dKV-Cache-Decode, the keys and
    /// values of decoded positions reused, masked and just-changed positions recomputed, a
    /// full forward every R steps; refresh:1 is none). LLaDA, Dream and BERT-family models
    #[arg(long, value_name = "none|prefix|dual|refresh:R", default_value = "none", value_parser = parse_cache)]
    cache: Cache,
    /// Seed of the sampler's random generator
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
    /// Also show (or, with --json, include) the canvas after every step
    #[arg(long)]
    trajectory: bool,
    /// Draw the denoising as an SVG picture: one row per step, one cell per generated token
    #[arg(long, value_name = "FILE.svg")]
    trajectory_svg: Option<PathBuf>,
}

fn sampler_config(args: &Args) -> anyhow::Result<SamplerConfig> {
    let name = StrategyName::from(args.strategy);
    let knobs = StrategyKnobs {
        block_length: args.block_length,
        threshold: args.threshold,
        noise_scale: args.noise_scale,
        remasking: args.remasking.map(|r| match r {
            RemaskingArg::LowConfidence => Remasking::LowConfidence,
            RemaskingArg::Random => Remasking::Random,
        }),
        factor: args.factor,
        alg: args.alg.map(|a| match a {
            AlgArg::Origin => DreamAlg::Origin,
            AlgArg::MaskgitPlus => DreamAlg::MaskgitPlus,
            AlgArg::TopkMargin => DreamAlg::TopkMargin,
            AlgArg::Entropy => DreamAlg::Entropy,
        }),
        alg_temp: args.alg_temp,
        top_p: args.top_p,
        top_k: args.top_k,
    };
    if let Some(flag) = name.unused_knobs(&knobs).first() {
        let users = StrategyName::ALL.into_iter().filter(|s| !s.unused_knobs(&knobs).contains(flag));
        let users: Vec<&str> = users.map(StrategyName::as_str).collect();
        anyhow::bail!("--{flag} applies only to --strategy {}, not {}", users.join(" and "), name.as_str());
    }
    let schedule = match args.schedule {
        ScheduleArg::Cosine => Schedule::Cosine,
        ScheduleArg::Linear => Schedule::Linear,
    };
    let strategy = name.build(schedule, knobs);
    let decoding = match args.temperature {
        Some(temperature) if temperature != 0.0 => Decoding::Sample { temperature },
        _ => Decoding::Argmax,
    };
    let record_trajectory = args.trajectory || args.trajectory_svg.is_some();
    let cache = args.cache;
    if matches!(cache, Cache::Prefix | Cache::Dual) && !matches!(name, StrategyName::Llada | StrategyName::FastDllm) {
        anyhow::bail!(
            "--cache {cache} applies only to --strategy llada and fast-dllm, not {} (refresh:R applies to every strategy)",
            name.as_str()
        );
    }
    Ok(SamplerConfig { steps: args.steps, strategy, decoding, seed: args.seed, record_trajectory, cache })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = sampler_config(&args)?;
    if args.chat && args.prompt_ids.is_some() {
        anyhow::bail!(
            "--chat applies the model's chat template to the text of --prompt, but --prompt-ids gives tokens: \
             give --prompt TEXT with --chat, or leave --chat out"
        );
    }
    let (model, tokenizer, special, prefix) = match (&args.prompt, &args.prompt_ids) {
        (Some(prompt), _) => {
            let loaded = args.model.load()?;
            let special = SpecialIds::from(loaded.special);
            let prefix = if args.chat {
                let text = chat_prompt(&loaded.tokenizer, loaded.model.dir(), prompt)?;
                tracing::debug!("chat prompt: {text:?}");
                chat_prefix(&loaded.tokenizer, &text)?
            } else {
                canvas_prefix(&loaded.tokenizer, prompt, special.eos)?
            };
            (loaded.model, Some(loaded.tokenizer), special, prefix)
        }
        (None, Some(ids)) => {
            let (model, tok) = args.model.load_for_ids()?;
            let special = match &tok {
                Some(t) => SpecialIds { mask: args.mask_id.unwrap_or(t.special.mask), ..SpecialIds::from(t.special) },
                None => special_ids_without_tokenizer(&model, args.mask_id)?,
            };
            let mut prefix = ids.clone();
            if prefix.last() == Some(&special.eos) {
                prefix.pop();
            }
            (model, tok.map(|t| t.tokenizer), special, prefix)
        }
        (None, None) => anyhow::bail!("give --prompt TEXT or --prompt-ids IDS"),
    };
    if tokenizer.is_none() && (args.trajectory_svg.is_some() || (args.trajectory && !args.json)) {
        anyhow::bail!("showing the trajectory as text needs a tokenizer: give --tokenizer PATH, or use --json");
    }
    let prompt_text = match (&args.prompt, &tokenizer) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(t)) => Some(t.decode(&prefix, true)?),
        (None, None) => None,
    };
    let dir = model.dir(); // the resolved local directory (also for hub ids)
    let predictor_path = dir.join(LENGTH_PREDICTOR_WEIGHTS);
    let (out, beam): (Denoised, Option<BeamChoice>) = match (args.length, args.length_beam) {
        (Some(length), _) => {
            let canvas = Canvas::for_model(&model, &prefix, length, special)?;
            (one(denoise(&model, &[canvas], &cfg, special)?)?, None)
        }
        (None, beam) => {
            if !predictor_path.exists() {
                anyhow::bail!(
                    "{}: no {LENGTH_PREDICTOR_WEIGHTS}, so the length cannot be predicted; give --length L",
                    dir.display()
                );
            }
            let predictor = LengthPredictor::load(dir, model.device())
                .with_context(|| format!("loading the length predictor of {}", dir.display()))?;
            let choices = generate_with_length_beam(&model, &predictor, &[prefix], beam.unwrap_or(1), &cfg, special)?;
            let choice = choices.into_iter().next().context("the length beam returned no hypothesis")?;
            (choice.best.clone(), Some(choice))
        }
    };
    let text = tokenizer.as_ref().map(|t| t.decode(&out.generated, true)).transpose()?;
    if let (Some(path), Some(tok), Some(text), Some(prompt)) = (&args.trajectory_svg, &tokenizer, &text, &prompt_text) {
        write_picture(path, tok, &out, special.mask, prompt, text)?;
    }
    if args.json {
        let mut obj = json!({
            "ids": out.ids,
            "generated_ids": out.generated,
            "mean_logprob": out.mean_logprob,
            // Denoising steps run, one forward each (cached inside a block with --cache; a
            // LLaDA step whose share of its block is 0 runs none).
            "steps": out.steps,
        });
        if let Some(text) = &text {
            obj["text"] = json!(text);
        }
        if let Some(b) = &beam {
            obj["length_candidates"] = json!(b.lengths);
            obj["length_mean_logprobs"] = json!(b.mean_logprobs);
        }
        if args.trajectory && let Some(t) = &out.trajectory {
            obj["trajectory"] = json!(t.canvases);
        }
        println!("{obj}");
        return Ok(());
    }
    match (&tokenizer, &text) {
        (Some(tok), Some(text)) => {
            if args.trajectory {
                print_trajectory(tok, &out, special.mask);
            }
            println!("{text}");
        }
        _ => println!("{}", out.generated.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
    }
    Ok(())
}

/// `prompt` as one user message through the chat template of the tokenizer's folder (else
/// the model's), with the generation prompt: the text `--chat` tokenizes.
fn chat_prompt(tokenizer: &Tokenizer, model_dir: &std::path::Path, prompt: &str) -> anyhow::Result<String> {
    Ok(chat_template(tokenizer, model_dir)?.render(&[ChatMessage::user(prompt)], true)?)
}

/// The denoising step by step in the terminal, masks visible.
pub(crate) fn print_trajectory(tokenizer: &Tokenizer, out: &Denoised, mask: u32) {
    let Some(t) = &out.trajectory else { return };
    let symbol = if std::io::stdout().is_terminal() { "\x1b[2m▢\x1b[0m" } else { "▢" };
    let width = t.canvases.len().to_string().len();
    for (s, canvas) in t.canvases.iter().enumerate() {
        let generated: Vec<u32> = out.positions.iter().map(|&p| canvas[p]).collect();
        let shown = render_canvas(&generated, mask, |run| tokenizer.decode(run, true).unwrap_or_default(), symbol);
        println!("step {:>width$}/{}  {shown}", s + 1, t.canvases.len());
    }
    println!();
}

/// The denoising as an SVG picture (one row per step).
pub(crate) fn write_picture(
    path: &std::path::Path,
    tokenizer: &Tokenizer,
    out: &Denoised,
    mask: u32,
    prompt: &str,
    text: &str,
) -> anyhow::Result<()> {
    let Some(t) = &out.trajectory else { anyhow::bail!("no trajectory was recorded") };
    let piece = |id: u32| tokenizer.id_to_token(id).unwrap_or_else(|| format!("#{id}"));
    let svg = trajectory_svg(t, &out.positions, mask, prompt, text, piece);
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!("wrote the denoising picture to {}", path.display());
    Ok(())
}

fn one(mut v: Vec<Denoised>) -> anyhow::Result<Denoised> {
    v.pop().context("the sampler returned no canvas")
}
