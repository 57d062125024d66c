//! Continuous batching at step granularity. One scheduler thread owns the model and runs
//! the denoising loop over a [`StepBatch`]: before every step it admits waiting requests
//! (their rows start at their own step 1 with that step), drops the rows of clients that
//! went away, then advances every row by one step in one forward pass. Each choice of a
//! request is one row, or `length_beam` rows when the length predictor chooses; a request
//! is answered when all its rows are done.
//!
//! A request that scores its prompts (`echo` with `logprobs`) also holds an [`ElboRun`] per
//! prompt; each iteration runs one group of every such estimate's Monte-Carlo samples (one
//! forward pass each, its own, never batched with denoising rows) before the batch's step.
//!
//! The async side never waits on the model: it hands a [`Job`] over a bounded channel
//! (full → 429 at once) and reads [`Event`]s from an unbounded one (at most one event per
//! step of each streamed row, so bounded by `steps`).

use crate::config::Limits;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::request::{ChoiceSpec, GenRequest, LengthSpec, diffusion_error};
use dlm_diffusion::{
    BeamChoice, Canvas, Denoised, ElboRun, ElboTerms, LengthPredictor, RowId, SpecialIds, StepBatch, Strategy,
    TokenLogprob,
};
use dlm_models::MaskedLm;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// What the scheduler tells a request's handler.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The request's rows are in the batch; they run from the next step.
    Admitted,
    /// Choice `choice` ran a step (streamed requests only).
    Step {
        choice: usize,
        step: usize,
        steps: usize,
        masked: usize,
        generated: Vec<u32>,
    },
    /// Every choice is done, in request order (and every prompt scored, when asked).
    Done(Outputs),
    Failed(ApiError),
}

/// One finished choice.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceOutput {
    /// Tokens at the generation slots.
    pub generated: Vec<u32>,
    /// The length came from the length predictor.
    pub predicted_length: bool,
    pub steps: usize,
    /// Per generation slot, when `logprobs` was asked: what was read off when it unmasked.
    pub logprobs: Option<Vec<Option<TokenLogprob>>>,
}

/// What a finished request gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// Per choice, in request order.
    pub choices: Vec<ChoiceOutput>,
    /// Per prompt: its ELBO terms when the request scores prompts (`echo` with `logprobs`).
    pub scores: Vec<Option<ElboTerms>>,
}

/// A request on its way to the scheduler.
pub struct Job {
    pub request: GenRequest,
    pub events: UnboundedSender<Event>,
}

/// Shared stop signals: `draining` = admit what is queued but nothing new; `cancel` = fail
/// everything still running and stop.
pub struct Control {
    pub draining: AtomicBool,
    pub cancel: AtomicBool,
    /// The scheduler thread is running.
    pub alive: AtomicBool,
}

impl Default for Control {
    fn default() -> Self {
        Control { draining: AtomicBool::new(false), cancel: AtomicBool::new(false), alive: AtomicBool::new(true) }
    }
}

/// Marks the scheduler as stopped when its thread ends, however it ends.
struct AliveGuard(Arc<Control>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::SeqCst);
    }
}

/// The async side's handle on the scheduler thread.
pub struct Scheduler {
    tx: SyncSender<Job>,
    capacity: usize,
    metrics: Arc<Metrics>,
    pub control: Arc<Control>,
}

impl Scheduler {
    /// Queues a request; 429 when the queue is full, 503 when shutting down.
    pub fn submit(&self, request: GenRequest) -> Result<UnboundedReceiver<Event>, ApiError> {
        if self.control.draining.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        let (events, rx) = unbounded_channel();
        self.metrics.queue_depth.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(Job { request, events }) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => ApiError::queue_full(self.capacity),
                    TrySendError::Disconnected(_) => ApiError::unavailable("the scheduler has stopped"),
                })
            }
        }
    }
}

/// The model side, moved into the scheduler thread.
pub struct Engine {
    pub lm: Box<dyn MaskedLm + Send>,
    pub length_predictor: Option<LengthPredictor>,
    pub special: SpecialIds,
}

/// Starts the scheduler thread.
pub fn spawn(
    engine: Engine,
    limits: &Limits,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Scheduler, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::sync_channel(limits.queue_size);
    let control = Arc::new(Control::default());
    let scheduler = Scheduler { tx, capacity: limits.queue_size, metrics: metrics.clone(), control: control.clone() };
    metrics.kv_cache_budget_bytes.store(limits.kv_cache_budget, Ordering::Relaxed);
    let limits = limits.clone();
    let handle = std::thread::Builder::new().name("dlm-scheduler".into()).spawn(move || {
        Loop {
            engine: &engine,
            rx,
            limits,
            metrics,
            control,
            jobs: HashMap::new(),
            rows: HashMap::new(),
            next_job: 0,
            waiting: None,
        }
        .run()
    })?;
    Ok((scheduler, handle))
}

/// A request whose rows are in the batch.
struct Running {
    job: Job,
    /// Per choice: the lengths of its rows (beam order) and their results so far.
    lengths: Vec<Vec<usize>>,
    results: Vec<Vec<Option<Denoised>>>,
    /// Rows and scoring runs not yet finished.
    pending: usize,
    row_ids: Vec<RowId>,
    /// ELBO estimates still running: (prompt, run).
    scoring: Vec<(usize, ElboRun)>,
    /// Per prompt: its finished ELBO terms.
    scores: Vec<Option<ElboTerms>>,
    /// KV cache bytes reserved for its rows until it is answered.
    cache_bytes: usize,
}

/// A request taken off the queue and checked, not yet in the batch: per choice its rows'
/// canvases (one per length), and the KV cache bytes those rows reserve.
struct Prepared {
    job: Job,
    canvases: Vec<Vec<Canvas>>,
    cache_bytes: usize,
}

/// Where a batch row belongs.
#[derive(Clone, Copy)]
struct Slot {
    job: u64,
    choice: usize,
    beam: usize,
}

struct Loop<'e> {
    engine: &'e Engine,
    rx: Receiver<Job>,
    limits: Limits,
    metrics: Arc<Metrics>,
    control: Arc<Control>,
    jobs: HashMap<u64, Running>,
    rows: HashMap<RowId, Slot>,
    next_job: u64,
    /// The first request in line, waiting for room in the KV cache budget (nothing behind
    /// it is admitted before it).
    waiting: Option<Prepared>,
}

/// How long an idle scheduler waits for work before looking at the stop signals again.
const IDLE_POLL: Duration = Duration::from_millis(50);

impl Loop<'_> {
    fn run(mut self) {
        let engine: &Engine = self.engine;
        let _alive = AliveGuard(self.control.clone());
        let mut batch = match StepBatch::new(engine.lm.as_ref(), engine.special) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("the scheduler cannot start: {e}");
                return;
            }
        };
        loop {
            if self.control.cancel.load(Ordering::SeqCst) {
                self.fail_all(&mut batch, ApiError::unavailable("the server shut down before this request finished"));
                self.fail_queued();
                return;
            }
            if !self.admit(&mut batch) {
                return;
            }
            self.drop_abandoned(&mut batch);
            self.advance_scoring(&mut batch);
            if batch.is_empty() {
                continue;
            }
            let started = Instant::now();
            let report = match batch.step() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("denoising step failed: {e}");
                    self.fail_all(&mut batch, ApiError::internal(format!("denoising failed: {e}")));
                    continue;
                }
            };
            self.metrics.record_step(started.elapsed().as_secs_f64());
            for a in report.advanced {
                let Some(slot) = self.rows.get(&a.id).copied() else { continue };
                let Some(run) = self.jobs.get(&slot.job) else { continue };
                if run.job.request.stream && slot.beam == 0 {
                    let spec = &run.job.request.choices[slot.choice];
                    let steps = shown_steps(spec, a.generated.len());
                    let event = Event::Step {
                        choice: slot.choice,
                        step: a.step,
                        steps,
                        masked: a.masked,
                        generated: a.generated,
                    };
                    let _ = run.job.events.send(event);
                }
            }
            for (id, out) in report.finished {
                self.finish_row(id, out);
            }
            self.publish(&batch);
        }
    }

    /// Takes waiting requests into the batch while there is room. Returns false when the
    /// scheduler should stop (draining with nothing left, or every sender gone).
    fn admit(&mut self, batch: &mut StepBatch<'_>) -> bool {
        loop {
            // A running ELBO estimate takes the place of a row (it holds a `[tokens, vocab]`
            // accumulator and runs forward passes of its own).
            let scoring: usize = self.jobs.values().map(|r| r.scoring.len()).sum();
            let room = if self.limits.continuous_batching {
                batch.len() + scoring < self.limits.max_batch_rows
            } else {
                self.jobs.is_empty()
            };
            if !room {
                return true;
            }
            let prepared = match self.waiting.take() {
                Some(p) => p,
                None => {
                    let job = match self.next_queued() {
                        Ok(Some(job)) => job,
                        Ok(None) => return true,
                        Err(()) => return false,
                    };
                    self.metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
                    if job.events.is_closed() {
                        self.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    match self.prepare(batch, job) {
                        Ok(p) => p,
                        Err((job, e)) => {
                            let _ = job.events.send(Event::Failed(e));
                            continue;
                        }
                    }
                }
            };
            if prepared.job.events.is_closed() {
                self.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if self.reserved_cache_bytes() + prepared.cache_bytes > self.limits.kv_cache_budget {
                // Room frees as running requests finish; nothing behind this one goes first.
                self.waiting = Some(prepared);
                self.publish(batch);
                return true;
            }
            let Prepared { job, canvases, cache_bytes } = prepared;
            match self.start(batch, &job.request, &canvases) {
                Ok((lengths, row_ids, scoring)) => {
                    let _ = job.events.send(Event::Admitted);
                    let id = self.next_job;
                    self.next_job += 1;
                    for (&row, slot) in row_ids.iter().zip(slots(id, &lengths)) {
                        self.rows.insert(row, slot);
                    }
                    let results = lengths.iter().map(|l| vec![None; l.len()]).collect();
                    let pending = row_ids.len() + scoring.len();
                    let scores = vec![None; job.request.prompts.len()];
                    let running = Running { job, lengths, results, pending, row_ids, scoring, scores, cache_bytes };
                    self.jobs.insert(id, running);
                    // Nothing to run (`echo` with `max_tokens: 0` and no scoring): done now.
                    self.complete_if_done(id);
                }
                Err(e) => {
                    let _ = job.events.send(Event::Failed(e));
                }
            }
            self.publish(batch);
        }
    }

    /// The next request in the queue: waits a little when nothing runs, takes only what
    /// is there otherwise. `Err(())` when the scheduler should stop (draining with nothing
    /// left, or every sender gone, with nothing running).
    fn next_queued(&self) -> Result<Option<Job>, ()> {
        if !self.jobs.is_empty() {
            return Ok(self.rx.try_recv().ok());
        }
        if self.control.draining.load(Ordering::SeqCst) {
            return self.rx.try_recv().map(Some).map_err(|_| ());
        }
        match self.rx.recv_timeout(IDLE_POLL) {
            Ok(job) => Ok(Some(job)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(()),
        }
    }

    /// KV cache bytes reserved by the running requests.
    fn reserved_cache_bytes(&self) -> usize {
        self.jobs.values().map(|r| r.cache_bytes).sum()
    }

    /// Predicts lengths where asked, lays out every row's canvas and prices its KV cache:
    /// a cache the model lacks is 400, one larger than the whole budget 429.
    #[allow(clippy::result_large_err)]
    fn prepare(&self, batch: &StepBatch<'_>, job: Job) -> Result<Prepared, (Job, ApiError)> {
        match self.layout(batch, &job.request) {
            Ok((canvases, cache_bytes)) => Ok(Prepared { job, canvases, cache_bytes }),
            Err(e) => Err((job, e)),
        }
    }

    /// [`Loop::prepare`] of one request: per choice its rows' canvases, and their cache bytes.
    fn layout(&self, batch: &StepBatch<'_>, request: &GenRequest) -> Result<(Vec<Vec<Canvas>>, usize), ApiError> {
        let (lm, special) = (self.engine.lm.as_ref(), self.engine.special);
        let mut canvases = Vec::with_capacity(request.choices.len());
        let mut cache_bytes = 0;
        for spec in &request.choices {
            let mut rows = Vec::new();
            for l in self.lengths(spec)? {
                let canvas = Canvas::for_model(lm, &spec.prefix, l, special).map_err(|e| diffusion_error(&e))?;
                cache_bytes += batch.cache_bytes_for(&canvas, &spec.cfg).map_err(|e| diffusion_error(&e))?;
                rows.push(canvas);
            }
            canvases.push(rows);
        }
        if cache_bytes > self.limits.kv_cache_budget {
            return Err(ApiError::cache_budget(cache_bytes, self.limits.kv_cache_budget));
        }
        Ok((canvases, cache_bytes))
    }

    /// Adds a request's rows and prepares its prompts' ELBO estimates; on error no row
    /// stays. Returns per choice its rows' lengths, the rows and the estimates.
    #[allow(clippy::type_complexity)]
    fn start(
        &self,
        batch: &mut StepBatch<'_>,
        request: &GenRequest,
        canvases: &[Vec<Canvas>],
    ) -> Result<(Vec<Vec<usize>>, Vec<RowId>, Vec<(usize, ElboRun)>), ApiError> {
        let scoring = self.scoring(request)?;
        let top = request.output.logprobs;
        let mut added = Vec::new();
        for (spec, rows) in request.choices.iter().zip(canvases) {
            for c in rows {
                match batch.add_with_logprobs(c, spec.cfg.clone(), top) {
                    Ok(id) => added.push(id),
                    Err(e) => {
                        for id in added {
                            batch.remove(id);
                        }
                        return Err(diffusion_error(&e));
                    }
                }
            }
        }
        let lengths = canvases.iter().map(|rows| rows.iter().map(Canvas::generation_len).collect()).collect();
        Ok((lengths, added, scoring))
    }

    /// One ELBO estimate per prompt when the request scores them: the canvas is the prompt
    /// as the model sees it (`<s> prompt </s>` for the BERT family), the scored positions
    /// the prompt's own tokens.
    fn scoring(&self, request: &GenRequest) -> Result<Vec<(usize, ElboRun)>, ApiError> {
        if !request.output.scores_prompt() {
            return Ok(Vec::new());
        }
        let lm = self.engine.lm.as_ref();
        let top = request.output.logprobs.unwrap_or(0);
        let special = self.engine.special;
        request
            .prompts
            .iter()
            .enumerate()
            .map(|(p, prompt)| {
                let mut ids = prompt.prefix.clone();
                if lm.closes_canvas_with_eos() {
                    ids.push(special.eos);
                }
                let scored: Vec<usize> = (prompt.scored_from..prompt.prefix.len()).collect();
                let run = ElboRun::new(lm, ids, scored, request.output.elbo_samples, request.seed, top, special)
                    .map_err(|e| diffusion_error(&e))?;
                Ok((p, run))
            })
            .collect()
    }

    /// Runs one group of samples of every running ELBO estimate.
    fn advance_scoring(&mut self, batch: &mut StepBatch<'_>) {
        let lm = self.engine.lm.as_ref();
        let ids: Vec<u64> = self.jobs.iter().filter(|(_, r)| !r.scoring.is_empty()).map(|(&id, _)| id).collect();
        for id in ids {
            let Some(run) = self.jobs.get_mut(&id) else { continue };
            let mut failed = None;
            let mut k = 0;
            while k < run.scoring.len() {
                if let Err(e) = run.scoring[k].1.advance(lm) {
                    failed = Some(e);
                    break;
                }
                if !run.scoring[k].1.is_done() {
                    k += 1;
                    continue;
                }
                let (p, estimate) = run.scoring.remove(k);
                match estimate.finish(lm) {
                    Ok(terms) => {
                        run.scores[p] = Some(terms);
                        run.pending -= 1;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                tracing::error!("ELBO scoring failed: {e}");
                if let Some(run) = self.jobs.remove(&id) {
                    for row in run.row_ids {
                        batch.remove(row);
                        self.rows.remove(&row);
                    }
                    let _ = run.job.events.send(Event::Failed(ApiError::internal(format!("scoring failed: {e}"))));
                }
                continue;
            }
            self.complete_if_done(id);
        }
        self.publish(batch);
    }
    /// The canvas lengths of a choice: its `max_tokens`, or the predictor's top `B`.
    fn lengths(&self, spec: &ChoiceSpec) -> Result<Vec<usize>, ApiError> {
        match (spec.length, &self.engine.length_predictor) {
            (LengthSpec::Fixed(0), _) => Ok(Vec::new()),
            (LengthSpec::Fixed(l), _) => Ok(vec![l]),
            (LengthSpec::Beam(b), Some(p)) => {
                let top = p.top_lengths(
                    self.engine.lm.as_ref(),
                    std::slice::from_ref(&spec.prefix),
                    b,
                    self.engine.special.pad,
                );
                top.map_err(|e| diffusion_error(&e))?
                    .pop()
                    .ok_or_else(|| ApiError::internal("the length predictor returned nothing"))
            }
            (LengthSpec::Beam(_), None) => Err(ApiError::invalid("length_beam", "the model has no length predictor")),
        }
    }

    fn finish_row(&mut self, id: RowId, out: Denoised) {
        let Some(slot) = self.rows.remove(&id) else { return };
        let Some(run) = self.jobs.get_mut(&slot.job) else { return };
        run.results[slot.choice][slot.beam] = Some(out);
        run.pending -= 1;
        self.complete_if_done(slot.job);
    }

    /// Answers a request once all its rows and scoring runs are done.
    fn complete_if_done(&mut self, job: u64) {
        if self.jobs.get(&job).is_none_or(|r| r.pending > 0) {
            return;
        }
        if let Some(run) = self.jobs.remove(&job) {
            self.publish_jobs();
            let event = match outputs(run.lengths, run.results, &run.job.request) {
                Ok(choices) => {
                    self.metrics.record_tokens(choices.iter().map(|o| o.generated.len()).sum());
                    Event::Done(Outputs { choices, scores: run.scores })
                }
                Err(e) => Event::Failed(e),
            };
            let _ = run.job.events.send(event);
        }
    }

    /// Frees the rows of requests whose client went away.
    fn drop_abandoned(&mut self, batch: &mut StepBatch<'_>) {
        let gone: Vec<u64> = self.jobs.iter().filter(|(_, r)| r.job.events.is_closed()).map(|(&id, _)| id).collect();
        for id in gone {
            if let Some(run) = self.jobs.remove(&id) {
                for row in run.row_ids {
                    batch.remove(row);
                    self.rows.remove(&row);
                }
                self.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.publish(batch);
    }

    fn fail_all(&mut self, batch: &mut StepBatch<'_>, error: ApiError) {
        for (_, run) in self.jobs.drain() {
            for row in run.row_ids {
                batch.remove(row);
            }
            let _ = run.job.events.send(Event::Failed(error.clone()));
        }
        self.rows.clear();
        self.publish(batch);
    }

    fn fail_queued(&mut self) {
        if let Some(p) = self.waiting.take() {
            let _ = p.job.events.send(Event::Failed(ApiError::unavailable("the server is shutting down")));
        }
        while let Ok(job) = self.rx.try_recv() {
            self.metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
            let _ = job.events.send(Event::Failed(ApiError::unavailable("the server is shutting down")));
        }
    }

    fn publish(&self, batch: &StepBatch<'_>) {
        self.metrics.batch_rows.store(batch.len(), Ordering::Relaxed);
        self.metrics.kv_cache_bytes.store(batch.cache_bytes(), Ordering::Relaxed);
        self.publish_jobs();
    }

    /// The gauges of the running and waiting requests (set before a request is answered,
    /// so its client reads them without it).
    fn publish_jobs(&self) {
        self.metrics.running_requests.store(self.jobs.len(), Ordering::Relaxed);
        self.metrics.kv_cache_reserved_bytes.store(self.reserved_cache_bytes(), Ordering::Relaxed);
        self.metrics.kv_cache_waiting.store(usize::from(self.waiting.is_some()), Ordering::Relaxed);
    }
}

/// The slots of a request's rows, in the order they were added.
fn slots(job: u64, lengths: &[Vec<usize>]) -> Vec<Slot> {
    lengths
        .iter()
        .enumerate()
        .flat_map(|(choice, ls)| (0..ls.len()).map(move |beam| Slot { job, choice, beam }))
        .collect()
}

/// The number of steps a streamed choice shows: K, or for the adaptive threshold strategy
/// its upper bound, one step per generation position.
fn shown_steps(spec: &ChoiceSpec, generation_len: usize) -> usize {
    match spec.cfg.strategy {
        Strategy::ConfidenceThreshold { .. } => generation_len,
        _ => spec.cfg.steps,
    }
}

/// Per choice the finished output (the best hypothesis of a length beam).
fn outputs(
    lengths: Vec<Vec<usize>>,
    results: Vec<Vec<Option<Denoised>>>,
    request: &GenRequest,
) -> Result<Vec<ChoiceOutput>, ApiError> {
    let mut outs = Vec::with_capacity(results.len());
    for ((ls, hyps), spec) in lengths.into_iter().zip(results).zip(&request.choices) {
        if ls.is_empty() {
            // `max_tokens: 0`: nothing generated.
            let logprobs = request.output.logprobs.map(|_| Vec::new());
            outs.push(ChoiceOutput { generated: Vec::new(), predicted_length: false, steps: 0, logprobs });
            continue;
        }
        let hyps: Option<Vec<Denoised>> = hyps.into_iter().collect();
        let hyps = hyps.ok_or_else(|| ApiError::internal("a row of this request never finished"))?;
        let best = BeamChoice::pick(ls, hyps).map_err(|e| ApiError::internal(e.to_string()))?.best;
        let predicted_length = matches!(spec.length, LengthSpec::Beam(_));
        outs.push(ChoiceOutput {
            generated: best.generated,
            predicted_length,
            steps: best.steps,
            logprobs: best.logprobs,
        });
    }
    Ok(outs)
}
