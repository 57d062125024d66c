//! The training loop (nanoGPT's `train.py`, burn's `Learner`): model-agnostic, driving a
//! [`TrainObjective`] with AdamW, the LR schedule, gradient accumulation and clipping,
//! dropout seeded per (step, micro-batch), validation, checkpoints and exact resume.
//!
//! One update `n → n+1`: for each of `accumulation` micro-batches `k`, set dropout from
//! `seed(DROPOUT, n+1, k)`, evaluate the objective with an RNG seeded `seed(OBJECTIVE,
//! n+1, k)`, backpropagate `loss / accumulation` and sum the gradients; clip to the global
//! norm; AdamW with `lr = schedule(n)`. Every quantity is a function of the weights, the
//! optimizer state and `n`, so a resumed run repeats the uninterrupted one step for step.
//!
//! Data parallelism over N ranks (through [`Collective`] only): an update reads
//! `accumulation · N` micro-batches and rank r computes micro-batch k when `k mod N = r`,
//! with the seeds of k, backpropagating `loss / (accumulation · N)`; the gradients are
//! summed over the ranks in f32 buckets ([`crate::data_parallel`]), so N ranks compute
//! what one process with `accumulation · N` does. Losses and counts are summed over the
//! ranks, so the logged loss is the global one. Rank 0 logs, validates and writes the
//! model; every rank writes its optimizer shard into the same checkpoint.

use crate::checkpoint::{self, BestRecord, TrainerState};
use crate::collective::{Collective, Timed, broadcast_scalars, layout, sum_scalars};
use crate::config::RunConfig;
use crate::data_parallel::Optimizer;
use crate::data::BatchPlan;
use crate::error::{Result, TrainError};
use crate::metrics_log::{MetricsLog, Record, TrainRecord};
use crate::optimizer::AdamWConfig;
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
    /// Ranks that trained together.
    pub world_size: usize,
    /// Bytes of optimizer state this rank held.
    pub optimizer_bytes: usize,
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
    /// The ranks training together ([`crate::collective::Single`] for one process).
    pub comm: std::rc::Rc<dyn Collective>,
}


impl Trainer {
    pub fn run(mut self, start: Start) -> Result<Summary> {
        let cfg = self.cfg.clone();
        let lead = self.comm.rank() == 0;
        let world = self.comm.world_size();
        if lead {
            std::fs::create_dir_all(&self.run_dir)
                .map_err(|e| TrainError::io(&self.run_dir, e))?;
            checkpoint::write_atomic(&self.run_dir.join(RUN_CONFIG), cfg.to_toml()?.as_bytes())?;
        }
        let vars = self.session.objective.vars();
        let opt_cfg = AdamWConfig {
            betas: cfg.optimizer.betas,
            eps: cfg.optimizer.eps,
            weight_decay: cfg.optimizer.weight_decay,
        };
        let comm_rc = self.comm.clone();
        let comm = comm_rc.as_ref();
        let mut opt = Optimizer::new(
            vars,
            opt_cfg,
            cfg.distributed.zero,
            cfg.distributed.bucket_elems(),
            comm,
        )?;
        if world > 1 {
            self.check_ranks_agree(&opt)?;
            let layout = layout(comm)?;
            if lead {
                tracing::info!("{world} ranks: {layout}");
            }
        }
        self.log_optimizer_memory(&opt)?;
        let mut state = match start {
            Start::Fresh => TrainerState::fresh(cfg.train.seed),
            Start::Resume { checkpoint, state } => {
                opt.load(&checkpoint, &state, comm)?;
                if lead {
                    tracing::info!(
                        "resuming from {} at step {}",
                        checkpoint.display(),
                        state.step
                    );
                    // The accumulation the checkpoint was trained with (its own run.toml).
                    let then = RunConfig::load(&checkpoint.join(RUN_CONFIG), &[])
                        .map_or(cfg.train.accumulation, |c| c.train.accumulation);
                    let accumulation = [then, cfg.train.accumulation];
                    if let Some(change) = reshard_note(&state, &opt, world, accumulation) {
                        tracing::warn!("{change}");
                    }
                }
                state
            }
        };
        let schedule = LrSchedule {
            kind: cfg.schedule.kind,
            peak: cfg.optimizer.lr,
            warmup: cfg.warmup_steps(),
            total: cfg.train.max_steps,
        };
        let mut log = lead
            .then(|| MetricsLog::open(&self.run_dir, state.step))
            .transpose()?;
        let mut plan = BatchPlan::new(
            &self.session.train,
            cfg.data.max_tokens,
            cfg.train.seed,
            cfg.data.shuffle,
        );
        let delay = std::env::var(STEP_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        let bar = lead.then(|| self.progress_bar(state.step)).flatten();
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
            world_size: world,
            optimizer_bytes: 0,
        };
        let epochs_left =
            |s: &TrainerState| cfg.train.max_epochs == 0 || s.data.epoch < cfg.train.max_epochs;
        while state.step < cfg.train.max_steps && epochs_left(&state) {
            let step_start = Instant::now();
            let n = state.step;
            let lr = schedule.lr(n);
            let (record, tokens, stopping) =
                self.update(&mut opt, &mut plan, &mut state, lr, &cfg)?;
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
            if let Some(log) = &mut log {
                log.append(&Record::Train(record))?;
            }
            if let Some(ms) = delay {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }

            let last = state.step == cfg.train.max_steps || !epochs_left(&state);
            let validate_now = self.session.valid.is_some()
                && (last
                    || (cfg.train.validate_interval > 0
                        && state.step.is_multiple_of(cfg.train.validate_interval)));
            let mut new_best = false;
            if validate_now
                && lead
                && let Some(valid) = &self.session.valid
            {
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
                if let Some(log) = &mut log {
                    log.append(&Record::Valid(v))?;
                }
            }
            if validate_now && world > 1 {
                // Rank 0 validated; every rank must agree on the checkpoints to write.
                let (step, value) = state.best.map_or((0.0, 0.0), |b| (b.step as f64, b.value));
                let got = broadcast_scalars(comm, &[new_best as u8 as f64, step, value], 0)?;
                new_best = got[0] > 0.0;
                if got[1] > 0.0 {
                    state.best = Some(BestRecord {
                        step: got[1] as u64,
                        value: got[2],
                    });
                }
            }
            if last || stopping || new_best || state.step.is_multiple_of(cfg.train.save_interval) {
                let dir = self.save(&opt, &state)?;
                if lead {
                    if new_best {
                        checkpoint::mark_best(&self.run_dir, &dir)?;
                    }
                    checkpoint::prune_old(&self.run_dir, cfg.train.keep_last)?;
                }
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
        summary.world_size = world;
        summary.optimizer_bytes = opt.state_bytes();
        if lead
            && cfg.train.plot
            && let Err(e) = crate::plot::plot_run(&self.run_dir)
        {
            tracing::warn!("could not draw the training curves: {e}");
        }
        Ok(summary)
    }

    /// One optimizer update; returns its record (throughput fields filled by the caller),
    /// the number of tokens it read and whether any rank was asked to stop.
    fn update(
        &mut self,
        opt: &mut Optimizer,
        plan: &mut BatchPlan,
        state: &mut TrainerState,
        lr: f64,
        cfg: &RunConfig,
    ) -> Result<(TrainRecord, u64, bool)> {
        let step = state.step + 1;
        let (rank, world) = (self.comm.rank(), self.comm.world_size());
        let objective = self.session.objective.as_mut();
        let vars = opt.vars();
        let mut grads: Vec<Option<Tensor>> = vec![None; vars.len()];
        // Micro-batches of this update over all ranks; this rank takes k ≡ rank (mod N).
        let accum = cfg.train.accumulation * world;
        let (mut loss, mut correct, mut scored, mut tokens) = (0.0, 0usize, 0usize, 0u64);
        let epoch = state.data.epoch;
        for k in 0..accum as u64 {
            let (indices, next) = plan.next(state.data);
            state.data = next;
            if k % world as u64 != rank as u64 {
                continue;
            }
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
        let timed = Timed::new(self.comm.as_ref());
        let grad_norm = opt.step(grads, lr, cfg.optimizer.clip_norm, &timed)?;
        let stop = self.stop.load(Ordering::SeqCst);
        let local = [loss, correct as f64, scored as f64, tokens as f64, stop as u8 as f64];
        let [loss, correct, scored, tokens, stop] = match sum_scalars(&timed, &local)?[..] {
            [a, b, c, d, e] => [a, b, c, d, e],
            _ => return Err(TrainError::Collective("all_reduce returned a wrong length".into())),
        };
        let accuracy = if scored > 0.0 { correct / scored } else { 0.0 };
        let record = TrainRecord {
            step,
            epoch,
            lr,
            loss,
            accuracy,
            tokens: tokens as u64,
            tokens_per_s: 0.0,
            grad_norm,
            elapsed_s: 0.0,
            comm_s: (world > 1).then(|| timed.seconds()),
        };
        Ok((record, tokens as u64, stop > 0.0))
    }

    /// Logs (on rank 0) the optimizer state every rank holds, which ZeRO-1 divides by N.
    fn log_optimizer_memory(&self, opt: &Optimizer) -> Result<()> {
        let comm = self.comm.as_ref();
        let mine = Tensor::new(&[opt.state_bytes() as f64], &candle_core::Device::Cpu)?;
        let per_rank = comm.all_gather(&mine)?.to_vec1::<f64>()?;
        if comm.rank() != 0 {
            return Ok(());
        }
        let mib = |b: f64| b / (1 << 20) as f64;
        let list: Vec<String> = per_rank.iter().map(|&b| format!("{:.2}", mib(b))).collect();
        let (how, unsharded) = match opt.zero_bucket() {
            Some(_) => ("ZeRO-1", per_rank.iter().sum::<f64>()),
            None if per_rank.len() > 1 => ("replicated", per_rank[0]),
            None => ("one process", per_rank[0]),
        };
        tracing::info!(
            "optimizer state per rank: [{}] MiB ({how}; {:.2} MiB unsharded) for {} parameters",
            list.join(", "),
            mib(unsharded),
            opt.parameters()
        );
        Ok(())
    }

    /// Errors unless every rank runs the same config on the same data and model.
    fn check_ranks_agree(&self, opt: &Optimizer) -> Result<()> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.cfg.to_toml()?.as_bytes());
        h.update(self.session.train.len().to_le_bytes());
        h.update(opt.parameters().to_le_bytes());
        let mine: Vec<u8> = h.finalize().to_vec();
        let n = mine.len();
        let here = Tensor::from_vec(mine.clone(), n, &candle_core::Device::Cpu)?;
        let root = self.comm.broadcast(&here, 0)?.to_vec1::<u8>()?;
        if root != mine {
            return Err(TrainError::Collective(format!(
                "rank {} does not train what rank 0 trains (the resolved config, the number \
                 of training examples or the parameter count differ); every rank needs the \
                 same files at the same paths",
                self.comm.rank()
            )));
        }
        Ok(())
    }

    /// Writes checkpoint `state.step`: with one rank as before; with N, rank 0 prepares
    /// the staging directory, every rank writes its optimizer file into it, and rank 0
    /// writes the model, seals and installs it once all are there.
    fn save(&self, opt: &Optimizer, state: &TrainerState) -> Result<PathBuf> {
        let comm = self.comm.as_ref();
        let state = TrainerState {
            world_size: comm.world_size(),
            zero_bucket: opt.zero_bucket(),
            ..state.clone()
        };
        if comm.world_size() == 1 {
            return checkpoint::write_checkpoint(&self.run_dir, &state, |dir| self.fill(dir, opt));
        }
        let lead = comm.rank() == 0;
        let tmp = checkpoint::staging_dir(&self.run_dir, state.step);
        if lead {
            checkpoint::start_checkpoint(&self.run_dir, state.step)?;
        }
        comm.barrier()?;
        if !lead {
            opt.save(&tmp, comm)?;
        }
        comm.barrier()?;
        if lead {
            checkpoint::finish_checkpoint(&self.run_dir, &tmp, &state, |dir| self.fill(dir, opt))
        } else {
            Ok(self.run_dir.join(checkpoint::checkpoint_name(state.step)))
        }
    }

    /// The model directory (HF layout), tokenizer, `run.toml` and this rank's optimizer
    /// file.
    fn fill(&self, dir: &std::path::Path, opt: &Optimizer) -> Result<()> {
        self.session.objective.save(dir)?;
        for (name, bytes) in &self.session.tokenizer_files {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| TrainError::io(&path, e))?;
        }
        if let Some(map) = self.session.tokenizer.vocab_map() {
            map.save(dir)?;
        }
        let path = dir.join(RUN_CONFIG);
        std::fs::write(&path, self.cfg.to_toml()?).map_err(|e| TrainError::io(&path, e))?;
        opt.save(dir, self.comm.as_ref())
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

/// What changes when a checkpoint written by another number of ranks (or with another
/// sharding) is resumed; `None` when nothing does.
fn reshard_note(state: &TrainerState, opt: &Optimizer, world: usize, [then, now]: [usize; 2]) -> Option<String> {
    let describe = |ranks: usize, bucket: Option<usize>| match bucket {
        Some(b) => format!("{ranks} rank(s) with ZeRO-1 shards (buckets of {b} elements)"),
        None => format!("{ranks} rank(s) with one unsharded optimizer file"),
    };
    let (old, new) = (
        describe(state.world_size, state.zero_bucket),
        describe(world, opt.zero_bucket()),
    );
    if old == new {
        return None;
    }
    let mut note = format!(
        "the checkpoint was written by {old}; this run has {new}: the optimizer state is \
         re-cut for it (moments and masters are unchanged, only where they live moves)"
    );
    if then * state.world_size != now * world {
        note.push_str(&format!(
            "; an update now reads accumulation {now} x {world} rank(s) = {} micro-batches \
             instead of {then} x {} = {} (the effective batch changes; set \
             train.accumulation to keep it)",
            now * world,
            state.world_size,
            then * state.world_size,
        ));
    }
    note.push_str(&format!(
        "; the data position and the LR schedule continue from step {}",
        state.step
    ));
    Some(note)
}
