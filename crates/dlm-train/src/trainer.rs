//! The training loop (nanoGPT's `train.py`, burn's `Learner`): model-agnostic, driving a
//! [`TrainObjective`] with AdamW, the LR schedule, gradient accumulation and clipping,
//! dropout seeded per (step, micro-batch), validation, checkpoints and exact resume.
//!
//! One update `n → n+1`: for each of `accumulation` micro-batches `k`, set dropout from
//! `seed(DROPOUT, n+1, k)`, evaluate the objective with an RNG seeded `seed(OBJECTIVE,
//! n+1, k)`, backpropagate `loss / accumulation` and sum the gradients; clip to the global
//! norm; AdamW with `lr = schedule(n)`. Every quantity is a function of the weights, the
//! optimizer state and `n`, so a resumed run repeats the uninterrupted one step for step.

use crate::checkpoint::{self, BestRecord, RNG_SCHEME, STATE_TENSORS, TrainerState};
use crate::config::RunConfig;
use crate::data::{BatchPlan, DataPosition};
use crate::error::{Result, TrainError};
use crate::metrics_log::{MetricsLog, Record, TrainRecord};
use crate::optimizer::{AdamW, AdamWConfig, clip_grad_norm};
use crate::schedule::LrSchedule;
use crate::seeds::{DROPOUT, OBJECTIVE, derive_seed};
use crate::session::Session;
use crate::validate::{score, validate};
use candle_core::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Run-level `run.toml` (the config `--resume` reads).
pub const RUN_CONFIG: &str = "run.toml";

/// Testing aid: milliseconds to sleep after each update, so that a test can kill a run in
/// the middle.
pub const STEP_DELAY_ENV: &str = "DLM_TRAIN_STEP_DELAY_MS";

/// What a finished (or interrupted) run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub run_dir: PathBuf,
    /// Updates done in total (including before a resume).
    pub steps: u64,
    /// Updates done by this process.
    pub steps_this_run: u64,
    pub last_loss: Option<f64>,
    pub last_checkpoint: Option<PathBuf>,
    pub best: Option<BestRecord>,
    pub interrupted: bool,
    pub steps_per_s: f64,
    pub tokens_per_s: f64,
}

/// Where a run starts: fresh, or a verified checkpoint and its state.
pub enum Start {
    Fresh,
    Resume {
        checkpoint: PathBuf,
        state: TrainerState,
    },
}

pub struct Trainer {
    pub cfg: RunConfig,
    pub run_dir: PathBuf,
    pub session: Session,
    /// Set (e.g. by a Ctrl-C handler) to finish the current update, checkpoint and stop.
    pub stop: Arc<AtomicBool>,
    pub progress: bool,
}

/// The initial state of a fresh run.
fn fresh_state(cfg: &RunConfig) -> TrainerState {
    TrainerState {
        format: 1,
        step: 0,
        data: DataPosition::default(),
        seed: cfg.train.seed,
        rng: RNG_SCHEME.into(),
        lr: 0.0,
        tokens_seen: 0,
        elapsed_s: 0.0,
        best: None,
        files: vec![],
    }
}

impl Trainer {
    pub fn run(mut self, start: Start) -> Result<Summary> {
        let cfg = self.cfg.clone();
        std::fs::create_dir_all(&self.run_dir).map_err(|e| TrainError::io(&self.run_dir, e))?;
        checkpoint::write_atomic(&self.run_dir.join(RUN_CONFIG), cfg.to_toml()?.as_bytes())?;
        let vars = self.session.objective.vars();
        let opt_cfg = AdamWConfig {
            betas: cfg.optimizer.betas,
            eps: cfg.optimizer.eps,
            weight_decay: cfg.optimizer.weight_decay,
        };
        let mut opt = AdamW::new(vars, opt_cfg)?;
        let mut state = match start {
            Start::Fresh => fresh_state(&cfg),
            Start::Resume { checkpoint, state } => {
                let path = checkpoint.join(STATE_TENSORS);
                let tensors = candle_core::safetensors::load(
                    &path,
                    &crate::session::device(&cfg.model.device)?,
                )
                .map_err(|e| TrainError::BadCheckpoint {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                opt.load_state(&tensors, state.step)?;
                tracing::info!(
                    "resuming from {} at step {}",
                    checkpoint.display(),
                    state.step
                );
                state
            }
        };
        let schedule = LrSchedule {
            kind: cfg.schedule.kind,
            peak: cfg.optimizer.lr,
            warmup: cfg.warmup_steps(),
            total: cfg.train.max_steps,
        };
        let mut log = MetricsLog::open(&self.run_dir, state.step)?;
        let mut plan = BatchPlan::new(
            &self.session.train,
            cfg.data.max_tokens,
            cfg.train.seed,
            cfg.data.shuffle,
        );
        let delay = std::env::var(STEP_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        let bar = self.progress_bar(state.step);
        let started = Instant::now();
        let (start_step, start_tokens, start_elapsed) =
            (state.step, state.tokens_seen, state.elapsed_s);
        let mut summary = Summary {
            run_dir: self.run_dir.clone(),
            steps: state.step,
            steps_this_run: 0,
            last_loss: None,
            last_checkpoint: None,
            best: state.best,
            interrupted: false,
            steps_per_s: 0.0,
            tokens_per_s: 0.0,
        };
        let epochs_left =
            |s: &TrainerState| cfg.train.max_epochs == 0 || s.data.epoch < cfg.train.max_epochs;
        while state.step < cfg.train.max_steps && epochs_left(&state) {
            let step_start = Instant::now();
            let n = state.step;
            let lr = schedule.lr(n);
            let (record, tokens) = self.update(&mut opt, &mut plan, &mut state, lr, &cfg)?;
            state.step = n + 1;
            state.lr = lr;
            state.tokens_seen += tokens;
            state.elapsed_s = start_elapsed + started.elapsed().as_secs_f64();
            let record = TrainRecord {
                tokens_per_s: tokens as f64 / step_start.elapsed().as_secs_f64().max(1e-9),
                elapsed_s: state.elapsed_s,
                ..record
            };
            summary.last_loss = Some(record.loss);
            if let Some(bar) = &bar {
                bar.set_position(state.step);
                bar.set_message(format!(
                    "loss {:.4} | {:.0} tok/s",
                    record.loss, record.tokens_per_s
                ));
            }
            log.append(&Record::Train(record))?;
            if let Some(ms) = delay {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }

            let last = state.step == cfg.train.max_steps || !epochs_left(&state);
            let stopping = self.stop.load(Ordering::SeqCst);
            let validate_now = self.session.valid.is_some()
                && (last
                    || (cfg.train.validate_interval > 0
                        && state.step.is_multiple_of(cfg.train.validate_interval)));
            let mut new_best = false;
            if validate_now && let Some(valid) = &self.session.valid {
                let v = validate(
                    self.session.objective.as_mut(),
                    valid,
                    &self.session.tokenizer,
                    &cfg,
                    state.step,
                )?;
                let value = score(&v, cfg.validate.best);
                if state.best.is_none_or(|b| value > b.value) {
                    state.best = Some(BestRecord {
                        step: state.step,
                        value,
                    });
                    new_best = true;
                }
                if let Some(bar) = &bar {
                    bar.println(format!(
                        "step {}: valid loss {:.4} bleu {:?} rouge_l {:?}",
                        state.step, v.loss, v.bleu, v.rouge_l
                    ));
                }
                log.append(&Record::Valid(v))?;
            }
            if last || stopping || new_best || state.step.is_multiple_of(cfg.train.save_interval) {
                let dir = self.save(&opt, &state)?;
                if new_best {
                    checkpoint::mark_best(&self.run_dir, &dir)?;
                }
                checkpoint::prune_old(&self.run_dir, cfg.train.keep_last)?;
                summary.last_checkpoint = Some(dir);
            }
            if stopping {
                summary.interrupted = true;
                break;
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        summary.steps = state.step;
        summary.steps_this_run = state.step - start_step;
        summary.steps_per_s = summary.steps_this_run as f64 / secs;
        summary.tokens_per_s = (state.tokens_seen - start_tokens) as f64 / secs;
        summary.best = state.best;
        if cfg.train.plot
            && let Err(e) = crate::plot::plot_run(&self.run_dir)
        {
            tracing::warn!("could not draw the training curves: {e}");
        }
        Ok(summary)
    }

    /// One optimizer update; returns its record (throughput fields filled by the caller)
    /// and the number of tokens it read.
    fn update(
        &mut self,
        opt: &mut AdamW,
        plan: &mut BatchPlan,
        state: &mut TrainerState,
        lr: f64,
        cfg: &RunConfig,
    ) -> Result<(TrainRecord, u64)> {
        let step = state.step + 1;
        let objective = self.session.objective.as_mut();
        let vars: Vec<_> = opt.vars().cloned().collect();
        let mut grads: Vec<Option<Tensor>> = vec![None; vars.len()];
        let accum = cfg.train.accumulation;
        let (mut loss, mut correct, mut scored, mut tokens) = (0.0, 0usize, 0usize, 0u64);
        let epoch = state.data.epoch;
        for k in 0..accum as u64 {
            let (indices, next) = plan.next(state.data);
            state.data = next;
            let batch: Vec<_> = indices
                .iter()
                .map(|&i| &self.session.train.examples[i])
                .collect();
            objective.set_dropout(
                cfg.train
                    .dropout
                    .then(|| derive_seed(cfg.train.seed, &[DROPOUT, step, k])),
            );
            let mut rng =
                ChaCha8Rng::seed_from_u64(derive_seed(cfg.train.seed, &[OBJECTIVE, step, k]));
            let out = objective.step(&batch, &mut rng)?;
            if !out.metrics.loss.is_finite() {
                return Err(TrainError::NonFinite {
                    step,
                    loss: out.metrics.loss,
                });
            }
            let store = (out.loss / accum as f64)?.backward()?;
            for (g, var) in grads.iter_mut().zip(&vars) {
                if let Some(new) = store.get(var.as_tensor()) {
                    *g = Some(match g.take() {
                        Some(old) => (old + new)?,
                        None => new.clone(),
                    });
                }
            }
            loss += out.metrics.loss / accum as f64;
            correct += out.metrics.correct;
            scored += out.metrics.scored;
            tokens += out.metrics.tokens as u64;
        }
        let grad_norm = clip_grad_norm(&mut grads, cfg.optimizer.clip_norm)?;
        opt.step(&grads, lr)?;
        let accuracy = if scored > 0 {
            correct as f64 / scored as f64
        } else {
            0.0
        };
        let record = TrainRecord {
            step,
            epoch,
            lr,
            loss,
            accuracy,
            tokens,
            tokens_per_s: 0.0,
            grad_norm,
            elapsed_s: 0.0,
        };
        Ok((record, tokens))
    }

    fn save(&self, opt: &AdamW, state: &TrainerState) -> Result<PathBuf> {
        let toml = self.cfg.to_toml()?;
        checkpoint::write_checkpoint(&self.run_dir, state, |dir| {
            self.session.objective.save(dir)?;
            for (name, bytes) in &self.session.tokenizer_files {
                let path = dir.join(name);
                std::fs::write(&path, bytes).map_err(|e| TrainError::io(&path, e))?;
            }
            if let Some(map) = self.session.tokenizer.vocab_map() {
                map.save(dir)?;
            }
            let path = dir.join(RUN_CONFIG);
            std::fs::write(&path, &toml).map_err(|e| TrainError::io(&path, e))?;
            let tensors: std::collections::HashMap<String, Tensor> =
                opt.state_tensors()?.into_iter().collect();
            let path = dir.join(STATE_TENSORS);
            candle_core::safetensors::save(&tensors, &path).map_err(|e| TrainError::BadCheckpoint {
                path,
                message: format!("cannot write: {e}"),
            })
        })
    }

    fn progress_bar(&self, position: u64) -> Option<indicatif::ProgressBar> {
        if !self.progress || !self.cfg.train.progress {
            return None;
        }
        let bar = indicatif::ProgressBar::new(self.cfg.train.max_steps);
        let style = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps | {msg} | ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_position(position);
        Some(bar)
    }
}
