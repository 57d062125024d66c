//! Step-level denoising for continuous batching (SPEC §4, one step at a time): a
//! [`StepBatch`] holds rows that each carry their own [`SamplerConfig`] (steps, strategy,
//! schedule, decoding) and their own seeded generator, and [`StepBatch::step`] advances
//! every row by one of *its own* steps in one forward pass. Rows join between steps
//! ([`StepBatch::add`]) and leave when done or when removed.
//!
//! A row's result does not depend on its batch mates: it plans and updates with the same
//! functions as [`super::denoise`] and draws from its own `ChaCha8Rng::seed_from_u64(seed)`,
//! so a row equals `denoise` of that canvas alone with the same configuration (exactly,
//! whenever the model's output for a row does not depend on the padding its batch adds).

use super::predict::{Draws, ModelPredictor, Predictor, Readout};
use super::state::Row;
use super::{Decoding, Denoised, SamplerConfig, Work, finish, plan_step, update_row};
use crate::canvas::{Canvas, SpecialIds};
use crate::error::{DiffusionError, Result};
use dlm_models::MaskedLm;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Names a row of a [`StepBatch`] (unique for the batch's lifetime).
pub type RowId = u64;

/// One row in flight.
struct Live {
    id: RowId,
    row: Row,
    cfg: SamplerConfig,
    rng: ChaCha8Rng,
    /// Steps this row has run.
    steps_run: usize,
    history: Vec<Vec<u32>>,
}

impl Live {
    /// The work of the row's next step, or `None` when the row is done (the conditions
    /// under which [`super::run`] stops for a batch of this row alone).
    fn plan(&self) -> Result<Option<Work>> {
        let step = self.steps_run + 1;
        if self.cfg.bounded() && step > self.cfg.steps {
            return Ok(None);
        }
        plan_step(&self.row, &self.cfg, step)
    }

    fn finish(self, special: SpecialIds) -> (RowId, Denoised) {
        (self.id, finish(self.row, self.history, self.steps_run, self.cfg.record_trajectory, special))
    }
}

/// A row that ran a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Advanced {
    pub id: RowId,
    /// The row's own step just run, 1-based.
    pub step: usize,
    /// The tokens at the row's generation slots after the step (`<mask>` where masked).
    pub generated: Vec<u32>,
    /// How many generation slots are still masked.
    pub masked: usize,
}

/// What one [`StepBatch::step`] did.
#[derive(Debug, Default)]
pub struct StepReport {
    /// Rows that ran a step, in batch order.
    pub advanced: Vec<Advanced>,
    /// Rows that are done (they left the batch), with their results.
    pub finished: Vec<(RowId, Denoised)>,
}

/// Rows being denoised together, each at its own step (see the module docs).
pub struct StepBatch<'m> {
    predictor: Box<dyn Predictor + 'm>,
    special: SpecialIds,
    max_len: usize,
    rows: Vec<Live>,
    next_id: RowId,
}

/// Each row decodes its own way and draws from its own generator.
struct PerRow<'r>(Vec<(Decoding, Readout, &'r mut ChaCha8Rng)>);

impl Draws for PerRow<'_> {
    fn decoding(&self, row: usize) -> Decoding {
        self.0[row].0
    }
    fn readout(&self, row: usize) -> Readout {
        self.0[row].1
    }
    fn rng(&mut self, row: usize) -> &mut ChaCha8Rng {
        self.0[row].2
    }
}

impl<'m> StepBatch<'m> {
    /// An empty batch over `model`.
    pub fn new(model: &'m dyn MaskedLm, special: SpecialIds) -> Result<StepBatch<'m>> {
        let predictor = ModelPredictor::new(model, special.pad, special.mask)?;
        Ok(Self::with_predictor(Box::new(predictor), model.max_sequence_length(), special))
    }

    pub(crate) fn with_predictor(predictor: Box<dyn Predictor + 'm>, max_len: usize, special: SpecialIds) -> StepBatch<'m> {
        StepBatch { predictor, special, max_len, rows: Vec::new(), next_id: 0 }
    }

    /// Adds a row that starts at its step 1 with the next [`StepBatch::step`]. The
    /// configuration is checked here (including the first step's plan, e.g. LLaDA's
    /// steps-per-block rule), so a bad request never fails a batch step.
    pub fn add(&mut self, canvas: &Canvas, cfg: SamplerConfig) -> Result<RowId> {
        cfg.validate()?;
        if canvas.generation_len() == 0 {
            return Err(DiffusionError::EmptyGeneration);
        }
        canvas.check_fits(self.max_len)?;
        let live = Live {
            id: self.next_id,
            row: Row::new(canvas),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            cfg,
            steps_run: 0,
            history: Vec::new(),
        };
        live.plan()?;
        self.next_id += 1;
        self.rows.push(live);
        Ok(self.next_id - 1)
    }

    /// Drops a row (its client went away); false when there is no such row.
    pub fn remove(&mut self, id: RowId) -> bool {
        let before = self.rows.len();
        self.rows.retain(|r| r.id != id);
        self.rows.len() != before
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Advances every row by one of its steps in one forward pass; rows with nothing left
    /// to do leave the batch with their results.
    pub fn step(&mut self) -> Result<StepReport> {
        let mut report = StepReport::default();
        let mut work = Vec::with_capacity(self.rows.len());
        for live in std::mem::take(&mut self.rows) {
            match live.plan()? {
                Some(w) => {
                    work.push(w);
                    self.rows.push(live);
                }
                None => report.finished.push(live.finish(self.special)),
            }
        }
        if self.rows.is_empty() {
            return Ok(report);
        }
        let canvases: Vec<Vec<u32>> = self.rows.iter().map(|l| l.row.tokens.clone()).collect();
        let inputs: Vec<&[u32]> = canvases.iter().map(Vec::as_slice).collect();
        let positions: Vec<Vec<usize>> = self.rows.iter().zip(&work).map(|(l, w)| l.row.positions(&w.slots)).collect();
        let mut draws = PerRow(self.rows.iter_mut().map(|l| (l.cfg.decoding, Readout::of(&l.cfg.strategy), &mut l.rng)).collect());
        let predictions = self.predictor.predict(&inputs, &positions, &mut draws)?;
        for ((live, w), preds) in self.rows.iter_mut().zip(&work).zip(predictions) {
            let step = live.steps_run + 1;
            update_row(&mut live.row, &preds, w, &live.cfg, step, &mut live.rng, self.special.mask);
            live.steps_run = step;
            if live.cfg.record_trajectory {
                live.history.push(live.row.tokens.clone());
            }
            let generated = (0..live.row.n()).map(|j| live.row.token(j)).collect();
            report.advanced.push(Advanced { id: live.id, step, generated, masked: live.row.masked_count() });
        }
        // Rows whose next step has nothing to do leave now rather than one call later.
        for live in std::mem::take(&mut self.rows) {
            match live.plan()? {
                Some(_) => self.rows.push(live),
                None => report.finished.push(live.finish(self.special)),
            }
        }
        Ok(report)
    }
}
