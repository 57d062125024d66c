//! Training for dlm (SPEC §3, §5, §6, §7): a model-agnostic loop ([`Trainer`]) driving a
//! [`TrainObjective`] — the diffusion objective, LLaDA's SFT objective, the autoregressive
//! baseline or the length predictor stage — with our own AdamW (fp32 master weights), LR
//! schedules, gradient accumulation and clipping, seeded dropout, validation by BLEU/ROUGE,
//! atomic checkpoints that `transformers` loads, exact resume, task-specific vocabulary
//! pruning and plots.
//!
//! ```text
//! run.toml ──► RunConfig ──► session::build ──► Session { objective, tokenizer, data }
//!   ──► Trainer::run ──► ckpt-STEP/ (HF model dir + trainer_state.*), metrics.jsonl, curves.{svg,png}
//! ```

pub mod ar;
pub mod beam;
pub mod checkpoint;
pub mod collective;
pub mod config;
pub mod data;
pub mod data_parallel;
mod error;
pub mod import_diffusionllm;
pub mod metrics_log;
pub mod objective;
pub mod optimizer;
pub mod plot;
pub mod schedule;
pub mod seeds;
pub mod session;
pub mod shard;
pub mod trainer;
pub mod validate;
pub mod zero;

pub use ar::{ar_generate, load_options_for, objective_of};
pub use beam::{BeamConfig, BeamOutput, beam_search};
pub use config::RunConfig;
pub use collective::{Collective, Single};
pub use error::{Result, TrainError};
pub use import_diffusionllm::{ImportRequest, ImportSummary, import_diffusionllm};
pub use objective::{StepMetrics, StepOutput, TrainObjective};
pub use trainer::{Start, Summary, Trainer};

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Starts a fresh run of `cfg` in `run_dir` (which must not hold checkpoints yet) in this
/// process alone.
pub fn train(
    cfg: RunConfig,
    run_dir: &Path,
    stop: Arc<AtomicBool>,
    progress: bool,
) -> Result<Summary> {
    train_on(cfg, run_dir, stop, progress, Rc::new(Single))
}

/// [`train`] on the ranks of `comm` (every rank calls it with the same arguments).
pub fn train_on(
    cfg: RunConfig,
    run_dir: &Path,
    stop: Arc<AtomicBool>,
    progress: bool,
    comm: Rc<dyn Collective>,
) -> Result<Summary> {
    if run_dir.exists() && !checkpoint::list_checkpoints(run_dir)?.is_empty() {
        return Err(TrainError::Invalid(format!(
            "{} already holds checkpoints; continue it with --resume {0} or choose another --out",
            run_dir.display()
        )));
    }
    let session = session::build(&cfg, None)?;
    Trainer {
        cfg,
        run_dir: run_dir.into(),
        session,
        stop,
        progress,
        comm,
    }
    .run(Start::Fresh)
}

/// Continues the run in `run_dir` from its newest valid checkpoint, with its `run.toml`
/// and `overrides` applied. Skipped (corrupted, half-written) checkpoints are reported.
pub fn resume(
    run_dir: &Path,
    overrides: &[String],
    stop: Arc<AtomicBool>,
    progress: bool,
) -> Result<Summary> {
    resume_on(run_dir, overrides, stop, progress, Rc::new(Single))
}

/// [`resume`] on the ranks of `comm`, which may be more or fewer than wrote the
/// checkpoint (the optimizer state is then re-sharded).
pub fn resume_on(
    run_dir: &Path,
    overrides: &[String],
    stop: Arc<AtomicBool>,
    progress: bool,
    comm: Rc<dyn Collective>,
) -> Result<Summary> {
    let cfg = RunConfig::load(&run_dir.join(trainer::RUN_CONFIG), overrides)?;
    let (checkpoint, state) = checkpoint::find_resumable(run_dir, |e| {
        tracing::warn!("skipping checkpoint: {e}; trying the previous one")
    })?;
    let session = session::build(&cfg, Some(&checkpoint))?;
    Trainer {
        cfg,
        run_dir: run_dir.into(),
        session,
        stop,
        progress,
        comm,
    }
    .run(Start::Resume { checkpoint, state })
}
