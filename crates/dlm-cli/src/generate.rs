//! `dlm generate`: text by iterative unmasking (SPEC §4) from one prompt, with an oracle
//! length (`--length`) or the model directory's length predictor (`--length-beam`, SPEC §5);
//! optionally the whole denoising trajectory, in the terminal, as JSON or as an SVG picture.
//! A prompt given as token ids (`--prompt-ids`) needs no tokenizer; the text is then absent.
//! With `--chat` the prompt is one user message through the model's chat template
//! (`tokenizer_config.json`, `dlm_data::ChatTemplate`), tokenized without added special
//! tokens.

use crate::model_dir::{ModelArgs, chat_template, special_ids_without_tokenizer};
use crate::sampler_args::SamplerArgs;
use dlm_data::{ChatMessage, Tokenizer, canvas_prefix, chat_prefix};
use anyhow::Context;
use dlm_diffusion::{
    BeamChoice, Canvas, Denoised, LENGTH_PREDICTOR_WEIGHTS, LengthPredictor, SpecialIds, denoise, generate_with_length_beam,
    render_canvas, trajectory_svg,
};
use dlm_models::MaskedLm;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;

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
    #[command(flatten)]
    sampler: SamplerArgs,
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.sampler.config(args.steps, args.trajectory || args.trajectory_svg.is_some())?;
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
