//! `dlm eval`: evaluate a model on one of the paper's benchmarks (SPEC §8), from the
//! paper's prompted JSONL or from raw data with zero/few-shot prompts, with the oracle
//! length or a length beam; or score a predictions file through the same path. Prints a
//! Markdown table; `--out report.json` also writes the JSON report, `report.md` and (when
//! generating) `report.predictions.jsonl`. The sampler options are `dlm generate`'s
//! (`crate::sampler_args`): every strategy, its knobs and every cache mode.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use dlm_data::Tokenizer;
use dlm_diffusion::{LENGTH_PREDICTOR_WEIGHTS, LengthPredictor};
use dlm_eval::{
    Dataset, Evaluation, GenerationConfig, Generator, LengthMode, LoadOptions, Predictions,
    Progress, PromptStyle, RunInfo, Task, evaluate_model, evaluate_predictions, write_predictions,
};
use dlm_models::{Config, MaskedLm};
use indicatif::{ProgressBar, ProgressStyle};

use crate::model_dir::{ModelArgs, chat_template};
use crate::sampler_args::SamplerArgs;

/// `--prompt` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PromptArg {
    /// The paper's instruction templates (zero/few-shot evaluation)
    Instruct,
    /// The source text alone (task-finetuned translation/summarisation models)
    Plain,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Benchmark: iwslt14-deen, iwslt14-ende, wmt14-ende, gigaword, mmlu, bbh, bbh-nlp,
    /// tydiqa, gsm8k, mgsm
    #[arg(long, value_parser = parse_task)]
    task: Task,
    /// Data: a prompted JSONL file or directory (e.g. ../shared/data/eval/mmlu), a raw file
    /// or directory (mmlu/dev, bbh/bbh, mgsm, gsm8k/train.jsonl), or the prefix of
    /// parallel text (mt/iwslt14/valid for valid.de + valid.en)
    #[arg(long)]
    data: PathBuf,
    /// Demonstrations per prompt (raw data), or which <k>-shot directory of prompted data
    #[arg(long)]
    shots: Option<usize>,
    /// Evaluate at most N examples of each subset
    #[arg(long)]
    limit: Option<usize>,
    /// Denoising iterations K (default: 50 translation/summarisation/math, 10 TyDiQA,
    /// 1 multiple choice)
    #[arg(long)]
    steps: Option<usize>,
    /// Use the model's length predictor with a beam of B lengths (default when the model
    /// directory has one: 10 translation/summarisation, 3 TyDiQA, 1 otherwise)
    #[arg(long, conflicts_with = "oracle_length")]
    length_beam: Option<usize>,
    /// Use the gold response length (default when there is no length predictor)
    #[arg(long)]
    oracle_length: bool,
    /// Examples per batch
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[command(flatten)]
    sampler: SamplerArgs,
    /// Instruction-tuned models (LLaDA-8B-Instruct, Dream-v0-Instruct-7B): each prompt as
    /// one user message through the model's chat template, the assistant's turn opened,
    /// tokenized without added special tokens (their own evaluation format)
    #[arg(long)]
    chat: bool,
    /// Prompt style for raw translation/summarisation data
    #[arg(long, value_enum, default_value = "instruct")]
    prompt: PromptArg,
    /// Write the JSON report here, the Markdown table beside it (.md) and, when
    /// generating, the predictions (.predictions.jsonl)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Score this predictions JSONL ({"subset", "index", "prediction"} per line) instead
    /// of generating; only the tokenizer and config of --model are read (to skip the
    /// same over-long examples)
    #[arg(long)]
    predictions: Option<PathBuf>,
}

fn parse_task(s: &str) -> Result<Task, String> {
    s.parse::<Task>().map_err(|e| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let style = match args.prompt {
        PromptArg::Instruct => PromptStyle::Instruct,
        PromptArg::Plain => PromptStyle::Plain,
    };
    let dir = args.model.dir()?;
    let info = RunInfo {
        model: dir.display().to_string(),
        data: args.data.display().to_string(),
        style,
        limit: args.limit,
        dtype: None,
        started,
    };
    let (dataset, evaluation) = match &args.predictions {
        Some(file) => score_file(&args, &dir, file, style, info)?,
        None => generate(&args, &dir, style, info)?,
    };
    let report = &evaluation.report;
    let markdown = report.markdown();
    print!("{markdown}");
    if let Some(out) = &args.out {
        let json = serde_json::to_string_pretty(report)?;
        std::fs::write(out, json + "\n").with_context(|| format!("writing {}", out.display()))?;
        let md = out.with_extension("md");
        std::fs::write(&md, &markdown).with_context(|| format!("writing {}", md.display()))?;
        if args.predictions.is_none() {
            let preds = out.with_extension("predictions.jsonl");
            write_predictions(&preds, &dataset, &evaluation.plan, &evaluation.predictions)?;
        }
    }
    Ok(())
}

/// Scores a predictions file: the tokenizer and maximum length come from the model
/// directory, the weights are not loaded.
fn score_file(
    args: &Args,
    dir: &Path,
    file: &Path,
    style: PromptStyle,
    info: RunInfo,
) -> anyhow::Result<(Dataset, Evaluation)> {
    let tokenizer = args.model.tokenizer(dir)?;
    let max_length = Config::from_file(&dir.join("config.json"))?.max_sequence_length();
    let dataset = load_dataset(args, style, &tokenizer)?;
    let given = Predictions::read(file)?;
    let chat = if args.chat { Some(chat_template(&tokenizer, dir)?) } else { None };
    let evaluation = evaluate_predictions(&dataset, &tokenizer, chat.as_ref(), max_length, &given, file, &info)?;
    Ok((dataset, evaluation))
}

fn generate(
    args: &Args,
    dir: &Path,
    style: PromptStyle,
    mut info: RunInfo,
) -> anyhow::Result<(Dataset, Evaluation)> {
    let sampler = args.sampler.config(args.steps.unwrap_or_else(|| args.task.default_steps()), false)?;
    let loaded = args.model.load()?;
    info.dtype = Some(format!("{:?}", args.model.dtype).to_lowercase());
    let dataset = load_dataset(args, style, &loaded.tokenizer)?;
    let has_predictor = dir.join(LENGTH_PREDICTOR_WEIGHTS).is_file();
    let length = match (args.oracle_length, args.length_beam) {
        (true, _) => LengthMode::Oracle,
        (false, Some(beam)) => LengthMode::Predicted { beam },
        (false, None) if has_predictor => LengthMode::Predicted {
            beam: args.task.default_length_beam(),
        },
        (false, None) => LengthMode::Oracle,
    };
    let predictor = match length {
        LengthMode::Predicted { .. } if !has_predictor => anyhow::bail!(
            "{}: no {LENGTH_PREDICTOR_WEIGHTS}, so lengths cannot be predicted; use --oracle-length",
            dir.display()
        ),
        LengthMode::Predicted { .. } => Some(
            LengthPredictor::load(dir, loaded.model.device())
                .with_context(|| format!("loading the length predictor of {}", dir.display()))?,
        ),
        LengthMode::Oracle => None,
    };
    let cfg = GenerationConfig {
        sampler,
        length,
        batch_size: args.batch_size,
    };
    let chat = if args.chat { Some(chat_template(&loaded.tokenizer, dir)?) } else { None };
    let generator = Generator {
        model: &loaded.model,
        tokenizer: &loaded.tokenizer,
        special: loaded.special,
        predictor: predictor.as_ref(),
        chat: chat.as_ref(),
    };
    let mut bar = Bar(None);
    let evaluation = evaluate_model(&dataset, &generator, &cfg, &info, &mut bar)?;
    Ok((dataset, evaluation))
}

fn load_dataset(args: &Args, style: PromptStyle, tokenizer: &Tokenizer) -> anyhow::Result<Dataset> {
    let opts = LoadOptions {
        shots: args.shots,
        style,
        tokenizer: Some(tokenizer),
    };
    Ok(dlm_eval::load(args.task, &args.data, &opts)?)
}

/// An indicatif bar on stderr with rate and ETA (hidden when stderr is not a terminal).
struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, total: usize) {
        let bar = ProgressBar::new(total as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:40} {pos}/{len} examples  {per_sec}  elapsed {elapsed_precise}  ETA {eta_precise}",
        ) {
            bar.set_style(style);
        }
        self.0 = Some(bar);
    }

    fn advance(&mut self, n: usize) {
        if let Some(bar) = &self.0 {
            bar.inc(n as u64);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}
