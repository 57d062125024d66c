//! Step-level denoising for continuous batching (SPEC §4, one step at a time): a
//! [`StepBatch`] holds rows that each carry their own [`SamplerConfig`] (steps, strategy,
//! schedule, decoding, cache) and their own seeded generator, and [`StepBatch::step`]
//! advances every row by one of *its own* steps. Rows join between steps
//! ([`StepBatch::add`]) and leave when done or when removed.
//!
//! Rows without a cache share one forward pass per step. A row with a cache keeps it with
//! the row, so rows of one batch can be at different blocks and cache states: a
//! `prefix`/`dual` row plans its blocks as [`super::cache`] does; a `refresh:R` row plans
//! its step through its dKV-Cache ([`super::refresh`]); the cached forwards of all these
//! rows run as one [`MaskedLm::encode_cached_rows`] (each row attending to its own keys
//! and values). Every row's keys and values are its own; [`StepBatch::cache_bytes`]
//! says how much they take and [`StepBatch::cache_bytes_for`] what a row would take.
//!
//! A row's result does not depend on its batch mates: it plans and updates with the same
//! functions as [`super::denoise`] and draws from its own `ChaCha8Rng::seed_from_u64(seed)`,
//! so a row equals `denoise` of that canvas alone with the same configuration (exactly,
//! whenever the model's output for a row does not depend on the padding its batch adds or
//! on the rows packed beside it in a product).

use super::cache;
use super::predict::{Draws, ModelPredictor, Prediction, Predictor, Readout, read_off};
use super::refresh::RefreshPredictor;
use super::state::Row;
use super::{Decoding, Denoised, SamplerConfig, TokenLogprob, Work, finish, plan_step, update_row};
use crate::canvas::{Canvas, SpecialIds};
use crate::error::{DiffusionError, Result};
use candle_core::Tensor;
use dlm_models::MaskedLm;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Names a row of a [`StepBatch`] (unique for the batch's lifetime).
pub type RowId = u64;

/// How a row's forwards run.
enum Mode<'m> {
    /// In the batch's shared forward over whole canvases (cache `none`, `refresh:1`).
    Shared,
    /// `refresh:R`: a forward of its own through its dKV-Cache.
    Refresh(RefreshPredictor<'m>),
    /// `prefix` or `dual`: Fast-dLLM's block plan and a cached forward of its own.
    Blocks(cache::State),
}

/// A row's next step: the plan of the ordinary loop, or of a block-cached row.
enum Planned {
    Step(Work),
    Block(cache::Work),
}

impl Planned {
    /// The slots the step predicts, in the order of its predictions.
    fn slots(&self) -> &[usize] {
        match self {
            Planned::Step(w) => &w.slots,
            Planned::Block(w) => &w.candidates,
        }
    }
}

/// One row in flight.
struct Live<'m> {
    id: RowId,
    row: Row,
    cfg: SamplerConfig,
    rng: ChaCha8Rng,
    mode: Mode<'m>,
    /// Steps this row has run.
    steps_run: usize,
    history: Vec<Vec<u32>>,
    /// [`StepBatch::add_with_logprobs`]: how many most likely tokens to keep per slot, and
    /// per slot what was read off at the step that (last) unmasked it.
    logprobs: Option<(usize, Vec<Option<TokenLogprob>>)>,
}

/// How a row reads off its predictions: its decoding and strategy, its generator, how many
/// most likely tokens it records, and those it received.
type Draw<'r> = (Decoding, Readout, &'r mut ChaCha8Rng, usize, Vec<Vec<(u32, f32)>>);

impl<'m> Live<'m> {
    /// The work of the row's next step, or `None` when the row is done (the conditions
    /// under which [`super::run`], or for a block cache `cache::run_cached`, stops for a
    /// batch of this row alone).
    fn plan(&mut self) -> Result<Option<Planned>> {
        if let Mode::Blocks(state) = &mut self.mode {
            return Ok(state.plan(&self.row, self.cfg.cache).map(Planned::Block));
        }
        let step = self.steps_run + 1;
        if self.cfg.bounded() && step > self.cfg.steps {
            return Ok(None);
        }
        Ok(plan_step(&self.row, &self.cfg, step)?.map(Planned::Step))
    }

    /// The row's draws, its mode and its canvas, borrowed apart.
    fn parts(&mut self) -> (Draw<'_>, &mut Mode<'m>, &Row) {
        let top = self.logprobs.as_ref().map_or(0, |(n, _)| *n);
        ((self.cfg.decoding, Readout::of(&self.cfg.strategy), &mut self.rng, top, Vec::new()), &mut self.mode, &self.row)
    }

    /// Applies the row's step `w` given its predictions.
    fn update(&mut self, w: &Planned, preds: &[Prediction], step: usize, mask: u32) {
        match (w, &mut self.mode) {
            (Planned::Block(w), Mode::Blocks(state)) => state.apply(&mut self.row, w, preds, &self.cfg.strategy, &mut self.rng, mask),
            (Planned::Step(w), _) => update_row(&mut self.row, preds, w, &self.cfg, step, &mut self.rng, mask),
            (Planned::Block(_), _) => unreachable!("only a row with a block cache plans a block step"),
        }
    }

    fn cache_bytes(&self) -> usize {
        match &self.mode {
            Mode::Shared => 0,
            Mode::Refresh(p) => p.cache_bytes(),
            Mode::Blocks(state) => state.cache_bytes(),
        }
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
    model: &'m dyn MaskedLm,
    predictor: ModelPredictor<'m>,
    special: SpecialIds,
    rows: Vec<Live<'m>>,
    next_id: RowId,
}

/// Each row decodes its own way and draws from its own generator; rows recording
/// log-probabilities get the most likely tokens of each predicted position.
#[derive(Default)]
struct PerRow<'r>(Vec<Draw<'r>>);

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

/// Per row of a step: its predictions (in the order of its planned slots) and the most
/// likely tokens it recorded.
type Predicted = (Vec<Prediction>, Vec<Vec<(u32, f32)>>);

impl<'m> StepBatch<'m> {
    /// An empty batch over `model`.
    pub fn new(model: &'m dyn MaskedLm, special: SpecialIds) -> Result<StepBatch<'m>> {
        let predictor = ModelPredictor::new(model, special.pad, special.mask)?;
        Ok(StepBatch { model, predictor, special, rows: Vec::new(), next_id: 0 })
    }

    /// Adds a row that starts at its step 1 with the next [`StepBatch::step`]. The
    /// configuration is checked here (including the first step's plan, e.g. LLaDA's
    /// steps-per-block rule, and whether the model has the cached forward a cache needs),
    /// so a bad request never fails a batch step.
    pub fn add(&mut self, canvas: &Canvas, cfg: SamplerConfig) -> Result<RowId> {
        self.add_with_logprobs(canvas, cfg, None)
    }

    /// [`StepBatch::add`], and with `top_logprobs = Some(n)` the row records, per
    /// generation slot, the log-probability of its token at the step that unmasked it and
    /// the `n` most likely tokens of that step ([`Denoised::logprobs`]). Asking changes no
    /// token: the `n` alternatives come from a separate projection of the row's positions.
    pub fn add_with_logprobs(&mut self, canvas: &Canvas, cfg: SamplerConfig, top_logprobs: Option<usize>) -> Result<RowId> {
        cfg.validate()?;
        if canvas.generation_len() == 0 {
            return Err(DiffusionError::EmptyGeneration);
        }
        canvas.check_fits(self.model.max_sequence_length())?;
        self.cache_bytes_for(canvas, &cfg)?; // a cache the model lacks is refused here
        let row = Row::new(canvas);
        let mode = match cfg.cache.interval() {
            // refresh:1 and reuse:1 refresh at every step: the uncached loop.
            _ if cfg.cache.uncached() => Mode::Shared,
            Some(rule) => Mode::Refresh(RefreshPredictor::new(self.model, self.special, rule, &cfg.strategy)?),
            None => Mode::Blocks(cache::State::new(&row, &cfg)?), // prefix, dual
        };
        let mut live = Live {
            id: self.next_id,
            row,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            cfg,
            mode,
            steps_run: 0,
            history: Vec::new(),
            logprobs: top_logprobs.map(|n| (n, vec![None; canvas.generation_len()])),
        };
        live.plan()?;
        self.next_id += 1;
        self.rows.push(live);
        Ok(self.next_id - 1)
    }

    /// Bytes the keys and values of a row of `canvas` under `cfg` take at most: 0 without
    /// a cache; an error when `cfg` asks for a cache the model does not have.
    pub fn cache_bytes_for(&self, canvas: &Canvas, cfg: &SamplerConfig) -> Result<usize> {
        match cfg.cache {
            c if c.uncached() => Ok(0),
            cache => self.model.kv_cache_bytes(canvas.ids().len()).ok_or_else(|| {
                DiffusionError::Model(dlm_models::ModelError::Unsupported(format!(
                    "cache {cache}: this model has no cached forward (KV caches)"
                )))
            }),
        }
    }

    /// Bytes the rows' keys and values take now.
    pub fn cache_bytes(&self) -> usize {
        self.rows.iter().map(Live::cache_bytes).sum()
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

    /// Advances every row by one of its steps (the rows without a cache in one forward
    /// pass); rows with nothing left to do leave the batch with their results.
    pub fn step(&mut self) -> Result<StepReport> {
        let mut report = StepReport::default();
        let mut work = Vec::with_capacity(self.rows.len());
        for mut live in std::mem::take(&mut self.rows) {
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
        let predicted = self.predict(&work)?;
        for ((live, w), (preds, tops)) in self.rows.iter_mut().zip(&work).zip(predicted) {
            let step = live.steps_run + 1;
            let was_masked = live.logprobs.is_some().then(|| live.row.masked.clone());
            live.update(w, &preds, step, self.special.mask);
            if let Some(was_masked) = was_masked {
                live.record(&was_masked, w.slots(), &preds, tops);
            }
            live.steps_run = step;
            if live.cfg.record_trajectory {
                live.history.push(live.row.tokens.clone());
            }
            let generated = (0..live.row.n()).map(|j| live.row.token(j)).collect();
            report.advanced.push(Advanced { id: live.id, step, generated, masked: live.row.masked_count() });
        }
        // Rows whose next step has nothing to do leave now rather than one call later.
        for mut live in std::mem::take(&mut self.rows) {
            match live.plan()? {
                Some(_) => self.rows.push(live),
                None => report.finished.push(live.finish(self.special)),
            }
        }
        Ok(report)
    }

    /// The predictions of every row's planned step `work[i]`: rows without a cache from
    /// one shared forward; the rows with a cache (`refresh:R` rows through their
    /// predictors' phases, block-cached rows through their plans) from one packed cached
    /// forward ([`MaskedLm::encode_cached_rows`]), read off together.
    fn predict(&mut self, work: &[Planned]) -> Result<Vec<Predicted>> {
        let StepBatch { model, predictor, special, rows, .. } = self;
        let (model, mask, pad) = (*model, special.mask, special.pad);
        let positions: Vec<Vec<usize>> = rows.iter().zip(work).map(|(l, w)| l.row.positions(w.slots())).collect();
        let mut out: Vec<Predicted> = vec![(Vec::new(), Vec::new()); rows.len()];
        let (mut shared, mut cached) = (Group::default(), Group::default());
        // The rows with a cache: their own part of the step, and the runs each computes.
        let mut own: Vec<(Own<'_, 'm>, &Row, usize, Vec<Vec<std::ops::Range<usize>>>)> = Vec::new();
        for ((i, live), w) in rows.iter_mut().enumerate().zip(work) {
            let (draw, mode, row) = live.parts();
            let part = match (mode, w) {
                (Mode::Shared, _) => {
                    shared.push(i, draw, row, &positions[i]);
                    continue;
                }
                (Mode::Refresh(p), Planned::Step(w)) => {
                    p.rows_of_step(&[(0, w.block)]);
                    let plans = p.plan(&[row.tokens.as_slice()], std::slice::from_ref(&positions[i]))?;
                    (Own::Refresh(p), plans)
                }
                (Mode::Blocks(state), Planned::Block(w)) => (Own::Blocks(state, w), Vec::new()),
                (Mode::Refresh(_) | Mode::Blocks(_), _) => unreachable!("a row plans the kind of step its mode runs"),
            };
            cached.push(i, draw, row, &positions[i]);
            own.push((part.0, row, i, part.1));
        }
        if !shared.rows.is_empty() {
            let preds = predictor.predict(&shared.inputs, &shared.positions, &mut shared.draws)?;
            shared.scatter(preds, &mut out);
        }
        if own.is_empty() {
            return Ok(out);
        }
        let mut forwards = Vec::new();
        for (part, row, _, plans) in &mut own {
            match part {
                Own::Refresh(p) => forwards.extend(p.cached_rows(&[row.tokens.as_slice()], plans)?),
                Own::Blocks(state, w) => forwards.push(state.cached_row(*row, *w)),
            }
        }
        let hidden = model.encode_cached_rows(&mut forwards, pad)?; // [Σ fresh, h]
        drop(forwards);
        // The states read off, and per row the positions they are at (a refresh row's
        // computed ones, in the order of its positions).
        let (mut selected, mut offset) = (Vec::new(), 0);
        for (k, (part, row, i, plans)) in own.iter_mut().enumerate() {
            let (states, at) = match part {
                Own::Refresh(p) => {
                    let n = plans.iter().flatten().map(|r| r.len()).sum();
                    let hidden = hidden.narrow(0, offset, n)?;
                    let (states, mut at) = p.absorb(&[row.tokens.as_slice()], std::slice::from_ref(&positions[*i]), plans, &hidden)?;
                    offset += n;
                    (states, at.remove(0))
                }
                Own::Blocks(_, w) => {
                    let n = w.fresh_len();
                    let (states, at) = w.select(*row, &hidden.narrow(0, offset, n)?)?;
                    offset += n;
                    (Some(states), at)
                }
            };
            selected.extend(states);
            cached.positions[k] = at;
        }
        let preds = if selected.is_empty() {
            vec![Vec::new(); own.len()]
        } else {
            read_off(model, mask, &Tensor::cat(&selected, 0)?, &cached.positions, &mut cached.draws)?
        };
        // A refresh row answers every position it was asked (kept predictions included);
        // the most likely tokens it recorded move to those positions' indices.
        let mut answers = Vec::with_capacity(own.len());
        for (k, ((part, _, i, _), preds)) in own.iter_mut().zip(preds).enumerate() {
            let Own::Refresh(p) = part else {
                answers.push(preds);
                continue;
            };
            let want = &positions[*i];
            let at = &cached.positions[k];
            answers.push(p.answer(std::slice::from_ref(want), std::slice::from_ref(at), &[preds])?.remove(0));
            let tops = &mut cached.draws.0[k].4;
            let mut moved = vec![Vec::new(); if tops.is_empty() { 0 } else { want.len() }];
            for (c, q) in at.iter().enumerate() {
                if let (Some(j), Some(top)) = (want.iter().position(|w| w == q), tops.get_mut(c)) {
                    moved[j] = std::mem::take(top);
                }
            }
            *tops = moved;
        }
        cached.scatter(answers, &mut out);
        Ok(out)
    }
}

/// A row with a cache in a step: its refreshed predictor, or its block state and plan.
enum Own<'s, 'm> {
    Refresh(&'s mut RefreshPredictor<'m>),
    Blocks(&'s mut cache::State, &'s cache::Work),
}

/// Rows of a step predicted together: their indices in the batch, canvases, positions and
/// draws.
#[derive(Default)]
struct Group<'r> {
    rows: Vec<usize>,
    inputs: Vec<&'r [u32]>,
    positions: Vec<Vec<usize>>,
    draws: PerRow<'r>,
}

impl<'r> Group<'r> {
    fn push(&mut self, i: usize, draw: Draw<'r>, row: &'r Row, positions: &[usize]) {
        self.rows.push(i);
        self.inputs.push(&row.tokens);
        self.positions.push(positions.to_vec());
        self.draws.0.push(draw);
    }

    /// The group's predictions (and recorded most likely tokens) into `out`, by batch row.
    fn scatter(self, preds: Vec<Vec<Prediction>>, out: &mut [Predicted]) {
        for ((i, p), d) in self.rows.into_iter().zip(preds).zip(self.draws.0) {
            out[i] = (p, d.4);
        }
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
