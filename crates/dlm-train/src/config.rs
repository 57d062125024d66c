//! The run configuration (SPEC §7): one TOML file with sections `[stage]`, `[model]`,
//! `[data]`, `[objective]`, `[optimizer]`, `[schedule]`, `[train]` and `[validate]`.
//! Unknown keys are errors naming the key and the file; every field can be overridden on
//! the command line with `--set section.key=value` (the value is TOML: `1e-4`, `true`,
//! `"text"`, `[0.9, 0.98]`; a bare word is taken as a string). The fully resolved config
//! is written as `run.toml` beside every checkpoint. Defaults are the released scripts'
//! recipe for task finetuning.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Finetune the backbone with `[objective]` (diffusion or the AR baseline).
    #[default]
    Finetune,
    /// Train the length predictor (SPEC §5) on a frozen, finetuned backbone.
    Length,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StageSection {
    #[serde(default)]
    pub kind: StageKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// The checkpoint's weights.
    #[default]
    Pretrained,
    /// The same architecture, randomly initialised as transformers does.
    Random,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// HuggingFace model directory (config.json, weights, tokenizer).
    pub dir: PathBuf,
    #[serde(default)]
    pub dtype: Precision,
    /// `cpu`, `cuda` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default)]
    pub init: Init,
    /// The tokenizer, when `dir` does not hold it: a tokenizer.json, vocab.txt or *.model
    /// file, or a folder holding one. Checkpoints get a copy, so resumes need no setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
}

fn default_device() -> String {
    "cpu".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Prompt-response JSONL (`{"inputs", "targets"}` per line). Unused (and may be left
    /// out) when `sources` is given.
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub train: PathBuf,
    /// `[[data.sources]]`: a fixed-ratio mixture of raw files (SPEC §7) used instead of
    /// `train` when not empty; one source is drawn per training example.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceEntry>,
    /// Examples drawn from `sources` for the training set (0: as many as the sources have
    /// rows together).
    #[serde(default)]
    pub mixture_rows: usize,
    /// Held-out JSONL for validation; none: no validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<PathBuf>,
    /// SPEC §2: sequences are cut from the left to this (and to the model's maximum).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Token budget of one micro-batch (`rows × longest row`).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Use only the first N training rows (0: all).
    #[serde(default)]
    pub max_train_rows: usize,
    /// Shuffle the order of batches each epoch (seeded).
    #[serde(default = "yes")]
    pub shuffle: bool,
    /// SPEC §6: keep only the vocabulary rows that occur in the data.
    #[serde(default)]
    pub prune_vocab: bool,
}

/// One `[[data.sources]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    pub path: PathBuf,
    /// `prompted` (default), `flan_cot_tsv`, `alpaca_json` or `gsm8k`.
    #[serde(default)]
    pub format: dlm_data::SourceFormat,
    /// Relative weight (the weights are normalised over the sources).
    pub weight: f64,
    /// Exemplars of the same source before each prompt (Flan 2022's few-shot format;
    /// 0: zero-shot). Exemplars are dropped from the end while the example is longer than
    /// `data.max_length`.
    #[serde(default)]
    pub shots: usize,
    /// The strings around exemplars (default: FLAN v2's, `"\n\n"` between input and
    /// target, `"\n\n\n"` between exemplars).
    #[serde(default)]
    pub few_shot: dlm_data::FewShotPattern,
}

fn is_empty_path(p: &Path) -> bool {
    p.as_os_str().is_empty()
}

fn default_max_length() -> usize {
    dlm_data::DEFAULT_MAX_LENGTH
}
fn default_max_tokens() -> usize {
    2048
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// Reparameterized absorbing diffusion (SPEC §3).
    #[default]
    Diffusion,
    /// Autoregressive baseline: causal attention, next-token CE on the response.
    Ar,
    /// LLaDA's SFT objective (`dlm_diffusion::sft_objective`): per example
    /// `t ~ U(0, 1)`, each response token masked with `p = (1 − ε)·t + ε`, CE at the
    /// masked positions divided by `p` and by the answer length, mean over the batch.
    LladaSft,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossFormKind {
    /// SPEC §3.5 (the paper's).
    #[default]
    Dlm,
    /// SPEC §3.7: RDM's original normalisation.
    Rdm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSection {
    #[serde(default)]
    pub kind: ObjectiveKind,
    /// T.
    #[serde(default = "default_timesteps")]
    pub timesteps: u32,
    #[serde(default)]
    pub form: LossFormKind,
    /// DLM form: `linear` (w = T-(t-1)) or `constant`.
    #[serde(default = "default_weighting")]
    pub weighting: dlm_diffusion::Weighting,
    /// RDM form: `linear`, `reciprocal` or `none`.
    #[serde(default = "default_rdm_weighting")]
    pub rdm_weighting: dlm_diffusion::RdmWeighting,
    /// A fixed masking ratio in (0, 1] instead of uniform timesteps (plain MLM baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_ratio: Option<f64>,
    /// ε of SPEC §3.6.
    #[serde(default)]
    pub label_smoothing: f64,
    /// `llada_sft` only: ε of `p_mask = (1 − ε)·t + ε`, the smallest masking probability
    /// (LLaDA: 1e-3).
    #[serde(default = "default_mask_eps")]
    pub mask_eps: f64,
    /// `llada_sft` only: pad the rows of a micro-batch to its longest with `</s>` and score
    /// the padding as response (LLaDA's own batching, Appendix B.1); off: each example's
    /// response and its one `</s>`, whatever its batch mates.
    #[serde(default)]
    pub eos_padding: bool,
}

fn default_mask_eps() -> f64 {
    dlm_diffusion::LLADA_MASK_EPS
}

fn default_timesteps() -> u32 {
    50
}
fn default_weighting() -> dlm_diffusion::Weighting {
    dlm_diffusion::Weighting::Linear
}
fn default_rdm_weighting() -> dlm_diffusion::RdmWeighting {
    dlm_diffusion::RdmWeighting::Linear
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSection {
    /// Peak learning rate (5e-5 task finetuning, 1e-5 instruction tuning).
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// Neither the paper nor SPEC states it; fairseq's `--adam-eps` default is 1e-8.
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Clip gradients to this global L2 norm (0: no clipping, fairseq's default).
    #[serde(default)]
    pub clip_norm: f64,
}

fn default_lr() -> f64 {
    5e-5
}
fn default_betas() -> [f64; 2] {
    [0.9, 0.98]
}
fn default_eps() -> f64 {
    1e-8
}
fn default_weight_decay() -> f64 {
    0.01
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    #[serde(default)]
    pub kind: crate::schedule::ScheduleKind,
    /// Warmup steps as a fraction of `train.max_steps` (0.01 in the released scripts).
    #[serde(default = "default_warmup_ratio")]
    pub warmup_ratio: f64,
    /// Warmup steps; overrides `warmup_ratio` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<u64>,
}

fn default_warmup_ratio() -> f64 {
    0.01
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BestMetric {
    /// Validation BLEU (higher is better).
    #[default]
    Bleu,
    /// Validation ROUGE-L (higher is better).
    RougeL,
    /// Validation loss (lower is better).
    Loss,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Optimizer updates to run.
    #[serde(default = "default_max_steps")]
    pub max_steps: u64,
    /// Stop after this many passes over the data (0: no limit).
    #[serde(default)]
    pub max_epochs: u64,
    /// Micro-batches per optimizer update (fairseq's `--update-freq`).
    #[serde(default = "one")]
    pub accumulation: usize,
    /// Dropout as in the model's config during training (SPEC §7).
    #[serde(default = "yes")]
    pub dropout: bool,
    /// Write a checkpoint every N updates (and at the end).
    #[serde(default = "default_save_interval")]
    pub save_interval: u64,
    /// Validate every N updates (0: only at the end).
    #[serde(default = "default_save_interval")]
    pub validate_interval: u64,
    /// Keep the newest N `ckpt-*` directories (and `best/`).
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    /// Show a progress bar on a terminal.
    #[serde(default = "yes")]
    pub progress: bool,
    /// Draw the training curves (PNG and SVG) at the end.
    #[serde(default = "yes")]
    pub plot: bool,
}

fn default_seed() -> u64 {
    1
}
fn default_max_steps() -> u64 {
    30_000
}
fn one() -> usize {
    1
}
fn default_save_interval() -> u64 {
    1000
}
fn default_keep_last() -> usize {
    3
}

/// `[distributed]`: how a run launched on N ranks (`mpirun -np N dlm train ...`) shares
/// the work. Ignored by a single process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributedSection {
    /// ZeRO-1: each rank keeps the optimizer state of 1/N of the parameters (off: every
    /// rank keeps all of it).
    #[serde(default = "yes")]
    pub zero: bool,
    /// Gradients are reduced in buckets of this many MiB of f32 (PyTorch DDP's default).
    #[serde(default = "default_bucket_mb")]
    pub bucket_mb: f64,
}

fn default_bucket_mb() -> f64 {
    25.0
}

impl DistributedSection {
    /// Elements per bucket (at least 1).
    pub fn bucket_elems(&self) -> usize {
        ((self.bucket_mb * 1024.0 * 1024.0 / 4.0) as usize).max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateSection {
    /// Held-out rows used for the loss and for sampling (0: all).
    #[serde(default = "default_valid_rows")]
    pub rows: usize,
    /// Denoising steps with the oracle length (SPEC §7: 10).
    #[serde(default = "default_valid_steps")]
    pub steps: usize,
    /// KV cache of the validation decoding (the paper's sampler, `reparam-uncond`):
    /// `none` or `refresh:R` (docs/caching.md); prefix and dual need a block strategy.
    #[serde(default)]
    pub cache: dlm_diffusion::Cache,
    /// Which metric picks `best/`.
    #[serde(default)]
    pub best: BestMetric,
    /// Generate and score BLEU/ROUGE (off: loss only).
    #[serde(default = "yes")]
    pub generate: bool,
    /// BLEU tokenizer: `13a` (IWSLT14) or `intl` (WMT14).
    #[serde(default = "default_bleu_tokenize")]
    pub bleu_tokenize: dlm_metrics::BleuTokenizer,
    /// AR baseline only: beam size of its decoding (1: greedy; fairseq's IWSLT14 recipe
    /// uses 5).
    #[serde(default = "one")]
    pub beam: usize,
    /// AR baseline only: length normalisation exponent of beam search (fairseq
    /// `--lenpen`, default 1).
    #[serde(default = "one_f64")]
    pub len_penalty: f64,
}

fn one_f64() -> f64 {
    1.0
}

fn default_valid_rows() -> usize {
    256
}
fn default_valid_steps() -> usize {
    10
}
fn default_bleu_tokenize() -> dlm_metrics::BleuTokenizer {
    dlm_metrics::BleuTokenizer::Tok13a
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default)]
    pub stage: StageSection,
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default = "default_section")]
    pub objective: ObjectiveSection,
    #[serde(default = "default_section")]
    pub optimizer: OptimizerSection,
    #[serde(default = "default_section")]
    pub schedule: ScheduleSection,
    #[serde(default = "default_section")]
    pub train: TrainSection,
    #[serde(default = "default_section")]
    pub validate: ValidateSection,
    #[serde(default = "default_section")]
    pub distributed: DistributedSection,
}

/// A section with every field at its default (an empty table deserialized).
fn default_section<T: serde::de::DeserializeOwned>() -> T {
    match toml::Table::new().try_into() {
        Ok(v) => v,
        // Every field of these sections has a serde default, so an empty table always
        // deserializes; reaching this is a bug in this file, not a user error.
        Err(e) => unreachable!("section defaults: {e}"),
    }
}

impl RunConfig {
    /// Reads `path`, applies `overrides` (`section.key=value`, in order) and checks the
    /// result. Relative paths inside the config are resolved against the current directory
    /// and made absolute, so that the saved `run.toml` works from anywhere.
    pub fn load(path: &Path, overrides: &[String]) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        Self::parse(&text, path, overrides)
    }

    /// [`RunConfig::load`] on text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<RunConfig> {
        let cfg_err = |message: String| TrainError::Config {
            path: path.into(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| cfg_err(e.to_string()))?;
        // Check the file alone first so that its errors name the file, not an override.
        let _: RunConfig = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| cfg_err(e.message().to_string()))?;
        for assignment in overrides {
            apply_override(&mut table, assignment)?;
            let _: RunConfig =
                table
                    .clone()
                    .try_into()
                    .map_err(|e: toml::de::Error| TrainError::Override {
                        assignment: assignment.clone(),
                        message: e.message().to_string(),
                    })?;
        }
        let mut cfg: RunConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| cfg_err(e.message().to_string()))?;
        cfg.absolutize()?;
        cfg.validate().map_err(cfg_err)?;
        Ok(cfg)
    }

    fn absolutize(&mut self) -> Result<()> {
        let cwd = std::env::current_dir().map_err(|e| TrainError::io(".", e))?;
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        };
        abs(&mut self.model.dir);
        if let Some(t) = self.model.tokenizer.as_mut() {
            abs(t);
        }
        if !is_empty_path(&self.data.train) {
            abs(&mut self.data.train);
        }
        for s in &mut self.data.sources {
            abs(&mut s.path);
        }
        if let Some(v) = self.data.valid.as_mut() {
            abs(v);
        }
        Ok(())
    }

    /// Range checks that serde cannot express.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let o = &self.optimizer;
        let sft = self.objective.kind == ObjectiveKind::LladaSft;
        let checks: [(bool, String); 18] = [
            (
                (0.0..1.0).contains(&self.objective.mask_eps),
                format!(
                    "objective.mask_eps must lie in [0, 1), got {}",
                    self.objective.mask_eps
                ),
            ),
            (
                !sft || (self.objective.label_smoothing == 0.0
                    && self.objective.mask_ratio.is_none()),
                "objective.kind = \"llada_sft\" has no label smoothing and no fixed mask ratio \
                 (LLaDA's recipe); leave objective.label_smoothing and objective.mask_ratio unset"
                    .into(),
            ),
            (
                self.distributed.bucket_mb.is_finite() && self.distributed.bucket_mb > 0.0,
                format!(
                    "distributed.bucket_mb must be positive, got {}",
                    self.distributed.bucket_mb
                ),
            ),
            (
                self.train.max_steps > 0,
                "train.max_steps must be at least 1".into(),
            ),
            (
                self.train.accumulation > 0,
                "train.accumulation must be at least 1".into(),
            ),
            (
                self.train.save_interval > 0,
                "train.save_interval must be at least 1".into(),
            ),
            (
                self.train.keep_last > 0,
                "train.keep_last must be at least 1".into(),
            ),
            (
                self.data.max_tokens > 0,
                "data.max_tokens must be at least 1".into(),
            ),
            (
                self.data.max_length >= 4,
                format!(
                    "data.max_length must be at least 4, got {}",
                    self.data.max_length
                ),
            ),
            (
                o.lr.is_finite() && o.lr >= 0.0,
                format!("optimizer.lr must be finite and non-negative, got {}", o.lr),
            ),
            (
                o.betas.iter().all(|b| (0.0..1.0).contains(b)),
                format!("optimizer.betas must lie in [0, 1), got {:?}", o.betas),
            ),
            (
                o.eps > 0.0,
                format!("optimizer.eps must be positive, got {}", o.eps),
            ),
            (
                o.weight_decay >= 0.0 && o.clip_norm >= 0.0,
                "optimizer.weight_decay and clip_norm must be non-negative".into(),
            ),
            (
                (0.0..=1.0).contains(&self.schedule.warmup_ratio),
                format!(
                    "schedule.warmup_ratio must lie in [0, 1], got {}",
                    self.schedule.warmup_ratio
                ),
            ),
            (
                self.validate.steps > 0,
                "validate.steps must be at least 1".into(),
            ),
            (
                self.validate.beam > 0,
                "validate.beam must be at least 1".into(),
            ),
            (
                !matches!(self.validate.cache, dlm_diffusion::Cache::Prefix | dlm_diffusion::Cache::Dual),
                format!(
                    "validate.cache {:?}: validation decodes with the paper's sampler (reparam-uncond), which takes \
                     cache none, refresh:R or reuse:R; prefix and dual are for the llada and fast-dllm strategies",
                    self.validate.cache.to_string()
                ),
            ),
            (
                self.validate.len_penalty.is_finite(),
                "validate.len_penalty must be finite".into(),
            ),
        ];
        if self.data.sources.is_empty() && is_empty_path(&self.data.train) {
            return Err("data.train or [[data.sources]] is required".into());
        }
        for s in &self.data.sources {
            if !(s.weight.is_finite() && s.weight >= 0.0) {
                return Err(format!(
                    "data.sources: the weight of {} must be finite and non-negative, got {}",
                    s.path.display(),
                    s.weight
                ));
            }
        }
        if !self.data.sources.is_empty() && self.data.sources.iter().all(|s| s.weight == 0.0) {
            return Err("data.sources: at least one weight must be positive".into());
        }
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(message),
            None => Ok(()),
        }
    }

    /// The resolved config as TOML (what `run.toml` holds).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self)
            .map_err(|e| TrainError::Invalid(format!("cannot serialise the run config: {e}")))
    }

    /// Warmup updates: `warmup_steps`, else `round(warmup_ratio × max_steps)`.
    pub fn warmup_steps(&self) -> u64 {
        self.schedule.warmup_steps.unwrap_or_else(|| {
            (self.schedule.warmup_ratio * self.train.max_steps as f64).round() as u64
        })
    }
}

/// Applies one `section.key=value` to the raw table.
fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let err = |message: &str| TrainError::Override {
        assignment: assignment.into(),
        message: message.into(),
    };
    let (key, value) = assignment
        .split_once('=')
        .ok_or_else(|| err("expected section.key=value"))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(err("the key must be section.key, e.g. optimizer.lr"));
    }
    let value = parse_value(value.trim());
    let section = table
        .entry(parts[0].to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match section {
        toml::Value::Table(t) => {
            t.insert(parts[1].to_string(), value);
            Ok(())
        }
        _ => Err(err(&format!("{} is not a section", parts[0]))),
    }
}

/// A TOML value, or the text itself as a string when it is not one (`--set data.train=x.jsonl`).
fn parse_value(text: &str) -> toml::Value {
    match format!("v = {text}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(text.into())),
        Err(_) => toml::Value::String(text.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[model]\ndir = \"/m\"\n[data]\ntrain = \"/t.jsonl\"\n";

    fn parse(text: &str, sets: &[&str]) -> Result<RunConfig> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        RunConfig::parse(text, Path::new("run.toml"), &sets)
    }

    #[test]
    fn defaults_are_the_released_recipe() {
        let c = parse(MINIMAL, &[]).unwrap();
        assert_eq!(c.optimizer.betas, [0.9, 0.98]);
        assert_eq!(
            (c.optimizer.lr, c.optimizer.eps, c.optimizer.weight_decay),
            (5e-5, 1e-8, 0.01)
        );
        assert_eq!(c.schedule.kind, crate::schedule::ScheduleKind::InverseSqrt);
        assert_eq!(c.data.max_length, 512);
        assert_eq!(c.objective.timesteps, 50);
        // 1% of 30k steps.
        assert_eq!(c.warmup_steps(), 300);
    }

    #[test]
    fn overrides_replace_values() {
        let c = parse(
            MINIMAL,
            &[
                "optimizer.lr=1e-4",
                "train.max_steps=10",
                "data.valid=v.jsonl",
                "objective.kind=ar",
                "optimizer.betas=[0.8, 0.9]",
            ],
        )
        .unwrap();
        assert_eq!(c.optimizer.lr, 1e-4);
        assert_eq!(c.train.max_steps, 10);
        assert!(c.data.valid.unwrap().ends_with("v.jsonl"));
        assert_eq!(c.objective.kind, ObjectiveKind::Ar);
        assert_eq!(c.optimizer.betas, [0.8, 0.9]);
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_source() {
        let e = parse(&format!("{MINIMAL}[optimizer]\nlrr = 1.0\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("run.toml: ") && e.contains("lrr"), "{e}");
        let e = parse(MINIMAL, &["optimizer.lrr=1"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--set optimizer.lrr=1") && e.contains("lrr"),
            "{e}"
        );
        let e = parse(MINIMAL, &["nosection.x=1"]).unwrap_err().to_string();
        assert!(e.contains("nosection"), "{e}");
        let e = parse(MINIMAL, &["lr=1"]).unwrap_err().to_string();
        assert!(e.contains("section.key"), "{e}");
    }

    #[test]
    fn range_errors_are_reported() {
        let e = parse(MINIMAL, &["train.max_steps=0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_steps"), "{e}");
        let e = parse(MINIMAL, &["optimizer.betas=[0.9, 1.5]"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("betas"), "{e}");
    }

    #[test]
    fn mixture_sources_parse_and_round_trip() {
        let text = "[model]\ndir = \"/m\"\n[data]\nmixture_rows = 100\n\
                    [[data.sources]]\npath = \"a.tsv\"\nformat = \"flan_cot_tsv\"\nweight = 3\n\
                    [[data.sources]]\npath = \"/b.jsonl\"\nformat = \"gsm8k\"\nweight = 1.0\n";
        let c = parse(text, &[]).unwrap();
        assert_eq!(c.data.sources.len(), 2);
        assert!(c.data.sources[0].path.is_absolute());
        assert_eq!(c.data.sources[0].format, dlm_data::SourceFormat::FlanCotTsv);
        assert_eq!(c.data.sources[1].weight, 1.0);
        assert_eq!(c.data.mixture_rows, 100);
        assert!(c.data.train.as_os_str().is_empty());
        let d = parse(&c.to_toml().unwrap(), &[]).unwrap();
        assert_eq!(c, d);
        // Inline on the command line, replacing data.train.
        let c = parse(
            MINIMAL,
            &[
                "data.train=\"\"",
                "data.sources=[{path = \"/x.json\", format = \"alpaca_json\", weight = 1}]",
            ],
        )
        .unwrap();
        assert_eq!(c.data.sources[0].format, dlm_data::SourceFormat::AlpacaJson);
        // The entries keep deny_unknown_fields; bad formats and weights are named.
        let e = parse(&text.replace("weight = 3", "weight = 3\nratio = 2"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ratio"), "{e}");
        let e = parse(&text.replace("flan_cot_tsv", "csv"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("csv"), "{e}");
        let e = parse(&text.replace("weight = 3", "weight = -3"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("weight"), "{e}");
        let e = parse("[model]\ndir = \"/m\"\n[data]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("data.train or [[data.sources]]"), "{e}");
    }

    #[test]
    fn llada_sft_parses_and_rejects_settings_it_does_not_have() {
        let c = parse(MINIMAL, &["objective.kind=llada_sft"]).unwrap();
        assert_eq!(c.objective.kind, ObjectiveKind::LladaSft);
        assert_eq!(
            (c.objective.mask_eps, c.objective.eos_padding),
            (1e-3, false)
        );
        assert_eq!(parse(&c.to_toml().unwrap(), &[]).unwrap(), c);
        for bad in ["objective.label_smoothing=0.1", "objective.mask_ratio=0.5"] {
            let e = parse(MINIMAL, &["objective.kind=llada_sft", bad])
                .unwrap_err()
                .to_string();
            assert!(e.contains("llada_sft"), "{e}");
        }
        let e = parse(MINIMAL, &["objective.mask_eps=1.0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("mask_eps"), "{e}");
    }

    #[test]
    fn validation_takes_the_caches_of_its_sampler() {
        assert_eq!(parse(MINIMAL, &[]).unwrap().validate.cache, dlm_diffusion::Cache::None);
        let c = parse(MINIMAL, &["validate.cache=refresh:3"]).unwrap();
        assert_eq!(c.validate.cache, dlm_diffusion::Cache::Refresh(3));
        // Written back under the same name.
        let again = RunConfig::parse(&c.to_toml().unwrap(), Path::new("run.toml"), &[]).unwrap();
        assert_eq!(again.validate.cache, dlm_diffusion::Cache::Refresh(3));
        let e = parse(MINIMAL, &["validate.cache=dual"]).unwrap_err().to_string();
        assert!(e.contains("validate.cache") && e.contains("refresh:R"), "{e}");
        let e = parse(MINIMAL, &["validate.cache=refresh:0"]).unwrap_err().to_string();
        assert!(e.contains("refresh:R or reuse:R (R ≥ 1)"), "{e}");
        assert_eq!(parse(MINIMAL, &["validate.cache=reuse:2"]).unwrap().validate.cache, dlm_diffusion::Cache::Reuse(2));
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = parse(MINIMAL, &["objective.mask_ratio=0.15"]).unwrap();
        let text = c.to_toml().unwrap();
        let d = parse(&text, &[]).unwrap();
        assert_eq!(c, d);
    }
}
