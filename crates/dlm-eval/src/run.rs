//! One evaluation from start to end: plan (limit, tokenize, skip), predictions (generated
//! by the model, or read from a file), the shared scoring path, the report.

use std::path::Path;
use std::time::Instant;

use dlm_data::{ChatTemplate, Tokenizer};

use crate::error::Result;
use crate::example::Dataset;
use crate::generate::{GenerationConfig, Generator};
use crate::plan::{Plan, plan};
use crate::predictions::Predictions;
use crate::report::{Mode, Report, ReportInputs, Settings, Timing};
use crate::scoring::{Scores, score_plan};
use crate::task::Metric;
use crate::templates::PromptStyle;

/// Progress of generation (the CLI draws a bar).
pub trait Progress {
    /// Generation of `total` examples begins.
    fn start(&mut self, total: usize);
    /// `n` more examples are done.
    fn advance(&mut self, n: usize);
    fn finish(&mut self) {}
}

/// No progress display.
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: usize) {}
    fn advance(&mut self, _: usize) {}
}

/// What a run records about itself besides the dataset.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub model: String,
    pub data: String,
    pub style: PromptStyle,
    pub limit: Option<usize>,
    pub dtype: Option<String>,
    /// When the run began (data loading included).
    pub started: Instant,
}

/// A finished evaluation.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub report: Report,
    pub plan: Plan,
    /// One per planned example, in plan order.
    pub predictions: Vec<String>,
}

fn settings(info: &RunInfo, dataset: &Dataset, mode: Mode, max_length: usize) -> Settings {
    Settings {
        mode,
        model: info.model.clone(),
        data: info.data.clone(),
        format: dataset.format,
        shots: dataset.shots,
        prompt_style: info.style,
        template: dataset.template.clone(),
        limit: info.limit,
        max_length,
        generation: None,
        dtype: info.dtype.clone(),
        predictions: None,
        bleu_signature: None,
        rouge: (dataset.task.metric() == Metric::RougeL).then(|| {
            "py-rouge 1.1 ROUGE-L F-measure as the authors computed it (stemming, 665-character limit, alpha 0.5), mean over segments; extra.rouge_score: rouge-score 0.1.2 ROUGE-L F, Porter stemming".into()
        }),
    }
}

/// Generates every planned response with the model and scores them.
pub fn evaluate_model(
    dataset: &Dataset,
    generator: &Generator,
    cfg: &GenerationConfig,
    info: &RunInfo,
    progress: &mut dyn Progress,
) -> Result<Evaluation> {
    let max_length = generator.model.max_sequence_length();
    let plan = plan(dataset, generator.tokenizer, generator.chat, max_length, info.limit)?;
    progress.start(plan.items.len());
    let t0 = Instant::now();
    let predictions = generator.generate(&plan, cfg, &mut |n| progress.advance(n))?;
    let generation_seconds = t0.elapsed().as_secs_f64();
    progress.finish();
    let scores = score_plan(dataset, &plan, &predictions)?;
    let mut settings = settings(info, dataset, Mode::Generate, max_length);
    settings.generation = Some(cfg.clone());
    let timing = Timing {
        total_seconds: info.started.elapsed().as_secs_f64(),
        generation_seconds,
        examples_per_second: (generation_seconds > 0.0)
            .then(|| plan.items.len() as f64 / generation_seconds),
    };
    Ok(finish(dataset, plan, scores, settings, timing, predictions))
}

/// Scores given predictions through the same plan and scoring path; `max_length` and
/// `tokenizer` (the model's) decide which examples are skipped, as in generation.
pub fn evaluate_predictions(
    dataset: &Dataset,
    tokenizer: &Tokenizer,
    chat: Option<&ChatTemplate>,
    max_length: usize,
    given: &Predictions,
    given_path: &Path,
    info: &RunInfo,
) -> Result<Evaluation> {
    let plan = plan(dataset, tokenizer, chat, max_length, info.limit)?;
    let predictions = given.aligned(dataset, &plan, given_path)?;
    let scores = score_plan(dataset, &plan, &predictions)?;
    let mut settings = settings(info, dataset, Mode::Predictions, max_length);
    settings.predictions = Some(given_path.display().to_string());
    let timing = Timing {
        total_seconds: info.started.elapsed().as_secs_f64(),
        generation_seconds: 0.0,
        examples_per_second: None,
    };
    Ok(finish(dataset, plan, scores, settings, timing, predictions))
}

/// The report of a scored plan, with the plan and predictions it came from.
fn finish(
    dataset: &Dataset,
    plan: Plan,
    scores: Scores,
    settings: Settings,
    timing: Timing,
    predictions: Vec<String>,
) -> Evaluation {
    let report = Report::build(ReportInputs { dataset, plan: &plan, scores, settings, timing });
    Evaluation { report, plan, predictions }
}
