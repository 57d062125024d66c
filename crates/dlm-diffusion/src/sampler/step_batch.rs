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

use super::predict::{Draws, ModelPredictor, Prediction, Predictor, Readout};
use super::state::Row;
use super::{Decoding, Denoised, SamplerConfig, TokenLogprob, Work, finish, plan_step, update_row};
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
    /// [`StepBatch::add_with_logprobs`]: how many most likely tokens to keep per slot, and
    /// per slot what was read off at the step that (last) unmasked it.
    logprobs: Option<(usize, Vec<Option<TokenLogprob>>)>,
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
        let mut out = finish(self.row, self.history, self.steps_run, self.cfg.record_trajectory, special);
        out.logprobs = self.logprobs.map(|(_, slots)| slots);
        (self.id, out)
    }

    /// After a step: the slots it unmasked take this step's prediction (token, log p and
    /// the most likely tokens) as their record.
    fn record(&mut self, was_masked: &[bool], slots: &[usize], preds: &[Prediction], mut tops: Vec<Vec<(u32, f32)>>) {
        let Some((_, record)) = self.logprobs.as_mut() else { return };
        for (i, (&j, p)) in slots.iter().zip(preds).enumerate() {
            if was_masked[j] && !self.row.masked[j] {
                let top = tops.get_mut(i).map(std::mem::take).unwrap_or_default();
                record[j] = Some(TokenLogprob { token: self.row.token(j), logprob: p.logp, top });
            }
        }
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

/// Each row decodes its own way and draws from its own generator; rows recording
/// log-probabilities get the most likely tokens of each predicted position.
struct PerRow<'r>(Vec<(Decoding, Readout, &'r mut ChaCha8Rng, usize, Vec<Vec<(u32, f32)>>)>);

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
    fn top_logprobs(&self, row: usize) -> usize {
        self.0[row].3
    }
    fn record_top(&mut self, row: usize, index: usize, top: Vec<(u32, f32)>) {
        let tops = &mut self.0[row].4;
        if tops.len() <= index {
            tops.resize(index + 1, Vec::new());
        }
        tops[index] = top;
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
        self.add_with_logprobs(canvas, cfg, None)
    }

    /// [`StepBatch::add`], and with `top_logprobs = Some(n)` the row records, per
    /// generation slot, the log-probability of its token at the step that unmasked it and
    /// the `n` most likely tokens of that step ([`Denoised::logprobs`]). Asking changes no
    /// token: the `n` alternatives come from a separate projection of the row's positions.
    pub fn add_with_logprobs(&mut self, canvas: &Canvas, cfg: SamplerConfig, top_logprobs: Option<usize>) -> Result<RowId> {
        cfg.validate()?;
        // refresh:1 refreshes at every step: it is the uncached loop.
        if !matches!(cfg.cache, super::Cache::None | super::Cache::Refresh(1)) {
            return Err(DiffusionError::InvalidConfig(format!(
                "cache \"{}\" is not supported by step-level batching (the server's continuous batching) yet: \
                 use cache none, or dlm generate",
                cfg.cache
            )));
        }
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
            logprobs: top_logprobs.map(|n| (n, vec![None; canvas.generation_len()])),
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
        let mut draws = PerRow(
            self.rows
                .iter_mut()
                .map(|l| {
                    let top = l.logprobs.as_ref().map_or(0, |(n, _)| *n);
                    (l.cfg.decoding, Readout::of(&l.cfg.strategy), &mut l.rng, top, Vec::new())
                })
                .collect(),
        );
        let predictions = self.predictor.predict(&inputs, &positions, &mut draws)?;
        let tops: Vec<Vec<Vec<(u32, f32)>>> = draws.0.into_iter().map(|d| d.4).collect();
        for (((live, w), preds), tops) in self.rows.iter_mut().zip(&work).zip(predictions).zip(tops) {
            let step = live.steps_run + 1;
            let was_masked = live.logprobs.is_some().then(|| live.row.masked.clone());
            update_row(&mut live.row, &preds, w, &live.cfg, step, &mut live.rng, self.special.mask);
            if let Some(was_masked) = was_masked {
                live.record(&was_masked, &w.slots, &preds, tops);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{DreamAlg, Parallel, Remasking, Strategy, TopK, Update};
    use crate::schedule::Schedule;
    use crate::testing::ToyLm;

    const SP: SpecialIds = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 3 };

    fn run(lm: &ToyLm, canvas: &Canvas, cfg: &SamplerConfig, top: Option<usize>) -> Denoised {
        let mut batch = StepBatch::new(lm, SP).unwrap();
        batch.add_with_logprobs(canvas, cfg.clone(), top).unwrap();
        loop {
            if let Some((_, d)) = batch.step().unwrap().finished.pop() {
                return d;
            }
        }
    }

    #[test]
    fn recording_logprobs_changes_no_token_and_reads_the_unmasking_step() {
        let lm = ToyLm::new(40, 16, 32, 11);
        let canvas = Canvas::new(&[0, 7, 9, 12], 6, SP).unwrap();
        let reparam = Strategy::Reparam { update: Update::Uncond, schedule: Schedule::Cosine, topk: TopK::Deterministic };
        let cfgs = [
            SamplerConfig { steps: 6, strategy: reparam, ..SamplerConfig::default() },
            SamplerConfig { steps: 4, strategy: Strategy::Cmlm, seed: 3, decoding: Decoding::Sample { temperature: 0.7 }, ..SamplerConfig::default() },
            SamplerConfig { steps: 6, strategy: Strategy::Ar, ..SamplerConfig::default() },
            SamplerConfig { steps: 3, strategy: Strategy::LowConfidence { block_length: None, remasking: Remasking::LowConfidence }, ..SamplerConfig::default() },
            SamplerConfig { steps: 3, strategy: Strategy::ConfidenceThreshold { rule: Parallel::Threshold(0.5), block_length: Some(2) }, ..SamplerConfig::default() },
            SamplerConfig { steps: 4, strategy: Strategy::Dream { alg: DreamAlg::Entropy, alg_temp: None, top_p: None, top_k: None }, ..SamplerConfig::default() },
        ];
        for cfg in &cfgs {
            let plain = run(&lm, &canvas, cfg, None);
            assert_eq!(plain.logprobs, None);
            let recorded = run(&lm, &canvas, cfg, Some(3));
            // Bit-identical run: the same tokens, scores and steps.
            assert_eq!((&recorded.generated, &recorded.scores, recorded.steps), (&plain.generated, &plain.scores, plain.steps), "{cfg:?}");
            let logprobs = recorded.logprobs.expect("recorded");
            assert_eq!(logprobs.len(), 6);
            for (j, lp) in logprobs.iter().enumerate() {
                let lp = lp.as_ref().unwrap_or_else(|| panic!("slot {j} never unmasked: {cfg:?}"));
                assert_eq!(lp.token, recorded.generated[j]);
                assert!(lp.logprob <= 0.0 && lp.logprob.is_finite());
                assert_eq!(lp.top.len(), 3);
                assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1));
                if cfg.decoding == Decoding::Argmax {
                    // Greedy: the token is the most likely one of its unmasking step.
                    assert_eq!(lp.top[0].0, lp.token, "{cfg:?}");
                    assert!((lp.top[0].1 - lp.logprob).abs() < 1e-4, "{cfg:?}: {lp:?}");
                } else {
                    assert!(lp.logprob <= lp.top[0].1 + 1e-4);
                }
            }
            // The unmask-only strategies store exactly that score too.
            if !matches!(cfg.strategy, Strategy::Cmlm | Strategy::Ar) {
                let stored: Vec<f32> = logprobs.iter().map(|l| l.as_ref().unwrap().logprob).collect();
                assert_eq!(stored, recorded.scores, "{cfg:?}");
            }
            // Token log-probabilities only.
            let bare = run(&lm, &canvas, cfg, Some(0)).logprobs.unwrap();
            assert!(bare.iter().all(|l| l.as_ref().is_some_and(|l| l.top.is_empty())));
        }
    }
}
