//! Continuous batching at step granularity. One scheduler thread owns the model and runs
//! the denoising loop over a [`StepBatch`]: before every step it admits waiting requests
//! (their rows start at their own step 1 with that step), drops the rows of clients that
//! went away, then advances every row by one step in one forward pass. Each choice of a
//! request is one row, or `length_beam` rows when the length predictor chooses; a request
//! is answered when all its rows are done.
//!
//! The async side never waits on the model: it hands a [`Job`] over a bounded channel
//! (full → 429 at once) and reads [`Event`]s from an unbounded one (at most one event per
//! step of each streamed row, so bounded by `steps`).

use crate::config::Limits;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::request::{ChoiceSpec, GenRequest, LengthSpec, diffusion_error};
use dlm_diffusion::{BeamChoice, Canvas, Denoised, LengthPredictor, RowId, SpecialIds, StepBatch, Strategy};
use dlm_models::MaskedLm;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
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
    /// Every choice is done, in request order.
    Done(Vec<ChoiceOutput>),
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
    let limits = limits.clone();
    let handle = std::thread::Builder::new().name("dlm-scheduler".into()).spawn(move || {
        Loop { engine: &engine, rx, limits, metrics, control, jobs: HashMap::new(), rows: HashMap::new(), next_job: 0 }
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
    /// Rows not yet finished.
    pending: usize,
    row_ids: Vec<RowId>,
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
            let room = if self.limits.continuous_batching {
                batch.len() < self.limits.max_batch_rows
            } else {
                self.jobs.is_empty()
            };
            if !room {
                return true;
            }
            let job = if self.jobs.is_empty() {
                if self.control.draining.load(Ordering::SeqCst) {
                    match self.rx.try_recv() {
                        Ok(job) => job,
                        Err(_) => return false,
                    }
                } else {
                    match self.rx.recv_timeout(IDLE_POLL) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => return true,
                        Err(RecvTimeoutError::Disconnected) => return false,
                    }
                }
            } else {
                match self.rx.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => return true,
                    Err(TryRecvError::Disconnected) => return true,
                }
            };
            self.metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
            if job.events.is_closed() {
                self.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match self.start(batch, &job.request) {
                Ok((lengths, row_ids)) => {
                    let _ = job.events.send(Event::Admitted);
                    let id = self.next_job;
                    self.next_job += 1;
                    for (&row, slot) in row_ids.iter().zip(slots(id, &lengths)) {
                        self.rows.insert(row, slot);
                    }
                    let results = lengths.iter().map(|l| vec![None; l.len()]).collect();
                    let pending = row_ids.len();
                    self.jobs.insert(id, Running { job, lengths, results, pending, row_ids });
                }
                Err(e) => {
                    let _ = job.events.send(Event::Failed(e));
                }
            }
            self.publish(batch);
        }
    }

    /// Adds a request's rows (after predicting lengths where asked); on error none stay.
    fn start(
        &self,
        batch: &mut StepBatch<'_>,
        request: &GenRequest,
    ) -> Result<(Vec<Vec<usize>>, Vec<RowId>), ApiError> {
        let mut lengths = Vec::with_capacity(request.choices.len());
        for spec in &request.choices {
            lengths.push(self.lengths(spec)?);
        }
        let mut added = Vec::new();
        for (spec, ls) in request.choices.iter().zip(&lengths) {
            for &l in ls {
                let row =
                    Canvas::for_model(self.engine.lm.as_ref(), &spec.prefix, l, self.engine.special).and_then(|c| batch.add(&c, spec.cfg.clone()));
                match row {
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
        Ok((lengths, added))
    }

    /// The canvas lengths of a choice: its `max_tokens`, or the predictor's top `B`.
    fn lengths(&self, spec: &ChoiceSpec) -> Result<Vec<usize>, ApiError> {
        match (spec.length, &self.engine.length_predictor) {
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
        if run.pending > 0 {
            return;
        }
        if let Some(run) = self.jobs.remove(&slot.job) {
            let event = match outputs(run.lengths, run.results, &run.job.request) {
                Ok(outs) => {
                    self.metrics.record_tokens(outs.iter().map(|o| o.generated.len()).sum());
                    Event::Done(outs)
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

    fn fail_queued(&self) {
        while let Ok(job) = self.rx.try_recv() {
            self.metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
            let _ = job.events.send(Event::Failed(ApiError::unavailable("the server is shutting down")));
        }
    }

    fn publish(&self, batch: &StepBatch<'_>) {
        self.metrics.batch_rows.store(batch.len(), Ordering::Relaxed);
        self.metrics.running_requests.store(self.jobs.len(), Ordering::Relaxed);
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
        let hyps: Option<Vec<Denoised>> = hyps.into_iter().collect();
        let hyps = hyps.ok_or_else(|| ApiError::internal("a row of this request never finished"))?;
        let best = BeamChoice::pick(ls, hyps).map_err(|e| ApiError::internal(e.to_string()))?.best;
        let predicted_length = matches!(spec.length, LengthSpec::Beam(_));
        outs.push(ChoiceOutput { generated: best.generated, predicted_length, steps: best.steps });
    }
    Ok(outs)
}
