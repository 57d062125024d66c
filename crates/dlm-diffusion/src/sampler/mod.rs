//! Iterative unmasking (SPEC §4): the explicit denoising loop over a batch of canvases
//! (many prompts and lengths at once, padded), dispatching on the closed [`Strategy`]
//! enum. Rows that a step cannot change are left out of that step's forward pass, and the
//! loop stops as soon as no row can change any more. After every step the loop reports a
//! [`StepEvent`] (the canvases so far), which is how trajectories are recorded and how a
//! caller can stream the denoising as it happens.

mod cache;
mod config;
mod dream;
mod predict;
mod refresh;
mod reparam;
mod state;
mod step_batch;
#[cfg(test)]
mod tests;
mod unmask;

pub use cache::Cache;
pub use config::{Decoding, DreamAlg, Parallel, Remasking, SamplerConfig, Strategy, StrategyKnobs, StrategyName, TopK, Update};
pub use step_batch::{Advanced, RowId, StepBatch, StepReport};
pub(crate) use predict::top_n;

use crate::canvas::{Canvas, SpecialIds};
use crate::error::{DiffusionError, Result};
use crate::schedule::transfer_counts;
use crate::trajectory::Trajectory;
use dlm_models::MaskedLm;
use predict::{ModelPredictor, Prediction, Predictor, Readout, Shared};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use state::Row;

/// One denoised canvas.
#[derive(Debug, Clone, PartialEq)]
pub struct Denoised {
    /// The full canvas after the last step.
    pub ids: Vec<u32>,
    /// Absolute positions of the generation slots.
    pub positions: Vec<usize>,
    /// The tokens at the generation slots.
    pub generated: Vec<u32>,
    /// The stored log-probability of each generation slot.
    pub scores: Vec<f32>,
    /// Mean stored log-probability over the generated tokens that are not `<pad>`, `<s>`
    /// or `</s>` (the released code's hypothesis score); −∞ when there are none.
    pub mean_logprob: f64,
    /// Steps actually run (fewer than K when the loop stopped early).
    pub steps: usize,
    /// The canvas after every step, when requested.
    pub trajectory: Option<Trajectory>,
    /// Per generation slot, for rows added with [`StepBatch::add_with_logprobs`]: the
    /// token's log-probability at the step that unmasked it (the last such step, for
    /// strategies that re-mask) and the most likely tokens at that step; `None` for a slot
    /// still masked at the end. `None` for every other run.
    pub logprobs: Option<Vec<Option<TokenLogprob>>>,
}

/// A generated token's log-probability at the step that unmasked it, and the `top` most
/// likely tokens of that step's distribution at its position (largest first), read off the
/// distribution the token was chosen from (`<mask>` forbidden for the RDM-family
/// strategies, the whole vocabulary for LLaDA, Fast-dLLM and Dream; never tempered).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// What the loop reports after each step it runs.
#[derive(Debug, Clone, Copy)]
pub struct StepEvent<'a> {
    /// The step just run, 1-based (steps a run skips at its end are never reported).
    pub step: usize,
    rows: &'a [Row],
}

impl<'a> StepEvent<'a> {
    /// The number of canvases, as given to the sampler.
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// Canvas `i` (in input order) after this step, with `<mask>` where still masked.
    pub fn canvas(&self, i: usize) -> &'a [u32] {
        &self.rows[i].tokens
    }
    /// Every canvas after this step, in input order.
    pub fn canvases(&self) -> impl Iterator<Item = &'a [u32]> + use<'a> {
        self.rows.iter().map(|r| r.tokens.as_slice())
    }
    /// How many generation positions of canvas `i` are still masked.
    pub fn masked(&self, i: usize) -> usize {
        self.rows[i].masked_count()
    }
}

/// Denoises `canvases` in one batch with `model`.
pub fn denoise(model: &dyn MaskedLm, canvases: &[Canvas], cfg: &SamplerConfig, special: SpecialIds) -> Result<Vec<Denoised>> {
    denoise_with(model, canvases, cfg, special, &mut |_| {})
}

/// [`denoise`], calling `on_step` after every step with the canvases so far (for
/// streaming; the events of a run are exactly its trajectory).
pub fn denoise_with(
    model: &dyn MaskedLm,
    canvases: &[Canvas],
    cfg: &SamplerConfig,
    special: SpecialIds,
    on_step: &mut dyn FnMut(StepEvent<'_>),
) -> Result<Vec<Denoised>> {
    cfg.validate()?;
    let max = model.max_sequence_length();
    for canvas in canvases {
        if canvas.generation_len() == 0 {
            return Err(DiffusionError::EmptyGeneration);
        }
        canvas.check_fits(max)?;
    }
    match cfg.cache.interval() {
        // A refresh at every step reuses nothing: the uncached loop.
        _ if cfg.cache.uncached() => {
            let mut predictor = ModelPredictor::new(model, special.pad, special.mask)?;
            run(&mut predictor, canvases, cfg, special, on_step)
        }
        Some(rule) => {
            let mut predictor = refresh::RefreshPredictor::new(model, special, rule, &cfg.strategy)?;
            run(&mut predictor, canvases, cfg, special, on_step)
        }
        None => cache::run_cached(model, canvases, cfg, special, on_step), // prefix, dual
    }
}

/// What one row does in one step: the slots to predict (none: the step changes nothing
/// and the model is not run for the row), a strategy parameter (k for reparam, the
/// transfer count for LLaDA and Dream, the current block for Fast-dLLM) and the row's
/// semi-autoregressive block (0 for the strategies without blocks).
struct Work {
    slots: Vec<usize>,
    param: usize,
    block: usize,
}

/// LLaDA's block layout for a row: block length and steps per block.
fn llada_blocks(n: usize, block_length: Option<usize>, steps: usize) -> Result<(usize, usize)> {
    let len = block_length.unwrap_or(n).clamp(1, n.max(1));
    let blocks = n.div_ceil(len);
    if !steps.is_multiple_of(blocks) {
        return Err(DiffusionError::InvalidConfig(format!(
            "low-confidence decoding needs the number of steps ({steps}) to be a multiple of the number of blocks \
             ({blocks} blocks of {len} for {n} generated tokens)"
        )));
    }
    Ok((len, steps / blocks))
}

fn plan_step(row: &Row, cfg: &SamplerConfig, step: usize) -> Result<Option<Work>> {
    let n = row.n();
    let all = || (0..n).collect::<Vec<_>>();
    let masked_in = |range: std::ops::Range<usize>| range.filter(|&j| row.masked[j]).collect::<Vec<_>>();
    Ok(match cfg.strategy {
        Strategy::Reparam { schedule, topk, .. } => {
            let k = schedule.masked_after(n, step, cfg.steps);
            // With nothing to re-mask (k = 0, typically the last step) only the masked
            // slots can change; when no generator is drawn from either, predicting just
            // them leaves every output as it was.
            let draws = matches!(topk, TopK::Stochastic { .. }) || matches!(cfg.decoding, Decoding::Sample { .. });
            let slots = if k == 0 && !draws { masked_in(0..n) } else { all() };
            (row.masked_count() > 0 || k > 0).then_some(Work { slots, param: k, block: 0 })
        }
        Strategy::Cmlm => Some(Work { slots: all(), param: 0, block: 0 }),
        Strategy::Ar => (row.masked_count() > 0).then(|| Work { slots: all(), param: 0, block: 0 }),
        Strategy::LowConfidence { block_length, .. } => {
            // LLaDA runs every step of every block, even one that transfers nothing; it
            // can only stop early when nothing is masked any more.
            let (len, per_block) = llada_blocks(n, block_length, cfg.steps)?;
            let (block, i) = ((step - 1) / per_block, (step - 1) % per_block);
            let range = unmask::block_slots(block, len, n);
            let count = transfer_counts(range.len(), per_block)[i];
            // Candidates: every masked slot up to the block's end (LLaDA sets the confidence
            // of positions past the block to −∞, not of those before it).
            let slots = if count > 0 { masked_in(0..range.end) } else { Vec::new() };
            (row.masked_count() > 0).then_some(Work { slots, param: count, block })
        }
        Strategy::ConfidenceThreshold { block_length, .. } => {
            // The current block: the first from `row.block` on that still has a masked
            // slot. The reference leaves a block only once it is complete; a step that
            // could not decode anything (every transfer predicted `<mask>`, which at
            // temperature 0 the reference would repeat forever) moves `row.block` past it.
            let len = block_length.unwrap_or(n).clamp(1, n.max(1));
            let blocks = n.div_ceil(len);
            let current = (row.block..blocks).find(|&b| unmask::block_slots(b, len, n).any(|j| row.masked[j]));
            current.map(|b| Work { slots: masked_in(0..unmask::block_slots(b, len, n).end), param: b, block: b })
        }
        Strategy::Dream { alg, .. } => {
            let masked = row.masked_count();
            let count = dream::transfer_count(masked, step, cfg.steps);
            let slots = if alg == DreamAlg::Origin || count > 0 { masked_in(0..n) } else { Vec::new() };
            (masked > 0).then_some(Work { slots, param: count, block: 0 })
        }
    })
}

/// The loop itself, over any [`Predictor`] (the model, or recorded predictions in tests).
pub(crate) fn run(
    predictor: &mut dyn Predictor,
    canvases: &[Canvas],
    cfg: &SamplerConfig,
    special: SpecialIds,
    on_step: &mut dyn FnMut(StepEvent<'_>),
) -> Result<Vec<Denoised>> {
    cfg.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut rows: Vec<Row> = canvases.iter().map(Row::new).collect();
    let mut history: Vec<Vec<Vec<u32>>> = vec![Vec::new(); rows.len()];
    let bounded = cfg.bounded();
    let readout = Readout::of(&cfg.strategy);
    let mut steps_run = 0;
    for step in 1.. {
        if bounded && step > cfg.steps {
            break;
        }
        let work: Vec<Option<Work>> = rows.iter().map(|r| plan_step(r, cfg, step)).collect::<Result<_>>()?;
        let active: Vec<usize> = (0..rows.len()).filter(|&i| work[i].is_some()).collect();
        if active.is_empty() {
            break;
        }
        let inputs: Vec<&[u32]> = active.iter().map(|&i| rows[i].tokens.as_slice()).collect();
        let positions: Vec<Vec<usize>> =
            active.iter().filter_map(|&i| work[i].as_ref().map(|w| rows[i].positions(&w.slots))).collect();
        let blocks: Vec<(usize, usize)> = active.iter().filter_map(|&i| work[i].as_ref().map(|w| (i, w.block))).collect();
        predictor.rows_of_step(&blocks);
        let predictions = predictor.predict(&inputs, &positions, &mut Shared { decoding: cfg.decoding, readout, rng: &mut rng })?;
        for (&i, preds) in active.iter().zip(predictions) {
            if let Some(w) = &work[i] {
                update_row(&mut rows[i], &preds, w, cfg, step, &mut rng, special.mask);
            }
        }
        steps_run += 1;
        record_step(step, &rows, &mut history, cfg.record_trajectory, on_step);
    }
    Ok(finish_all(rows, history, steps_run, cfg.record_trajectory, special))
}

/// After a step: the canvases into each row's history (when recording), then the event.
pub(crate) fn record_step(
    step: usize,
    rows: &[Row],
    history: &mut [Vec<Vec<u32>>],
    record: bool,
    on_step: &mut dyn FnMut(StepEvent<'_>),
) {
    let event = StepEvent { step, rows };
    if record {
        for (h, canvas) in history.iter_mut().zip(event.canvases()) {
            h.push(canvas.to_vec());
        }
    }
    on_step(event);
}

/// The outputs of a finished run, row by row.
pub(crate) fn finish_all(rows: Vec<Row>, history: Vec<Vec<Vec<u32>>>, steps: usize, record: bool, special: SpecialIds) -> Vec<Denoised> {
    rows.into_iter().zip(history).map(|(row, h)| finish(row, h, steps, record, special)).collect()
}

/// Applies step `step` of `cfg.strategy` to one row, given the predictions for the slots
/// `work` planned.
fn update_row(row: &mut Row, preds: &[Prediction], w: &Work, cfg: &SamplerConfig, step: usize, rng: &mut ChaCha8Rng, mask: u32) {
    match cfg.strategy {
        Strategy::Reparam { update, schedule, topk } => {
            // Slots left out of the plan keep what they hold (only when k = 0, see plan_step).
            let mut all: Vec<Prediction> = (0..row.n()).map(|j| Prediction::new(row.token(j), row.scores[j])).collect();
            for (&j, &p) in w.slots.iter().zip(preds) {
                all[j] = p;
            }
            let preds = &all;
            let mut rank: Vec<f32> = preds.iter().map(|p| p.logp).collect();
            if let TopK::Stochastic { scale } = topk {
                let temp = (scale * schedule.rate(step, cfg.steps)) as f32;
                for r in rank.iter_mut() {
                    *r += temp * reparam::gumbel(rng.random::<f32>());
                }
            }
            let lowest = reparam::lowest_k(&rank, w.param);
            reparam::reparam_update(row, preds, &lowest, update, mask);
        }
        Strategy::Cmlm => unmask::cmlm_update(row, preds, 1.0 / (cfg.steps - step + 1) as f64, rng),
        Strategy::Ar => unmask::ar_update(row, preds),
        Strategy::LowConfidence { remasking, .. } => {
            unmask::low_confidence_update(row, &w.slots, preds, w.param, remasking, rng, mask)
        }
        Strategy::ConfidenceThreshold { rule, .. } => {
            if !unmask::parallel_update(row, &w.slots, preds, rule, mask) {
                row.block = w.param + 1;
            }
        }
        Strategy::Dream { alg, alg_temp, .. } => {
            dream::dream_update(row, &w.slots, preds, alg, alg_temp, (step, cfg.steps, w.param), rng, mask)
        }
    }
}

fn finish(row: Row, history: Vec<Vec<u32>>, steps: usize, record: bool, special: SpecialIds) -> Denoised {
    let generated: Vec<u32> = (0..row.n()).map(|j| row.token(j)).collect();
    let kept: Vec<f64> = generated
        .iter()
        .zip(&row.scores)
        .filter(|(t, _)| ![special.pad, special.bos, special.eos].contains(t))
        .map(|(_, &s)| s as f64)
        .collect();
    let mean_logprob = if kept.is_empty() { f64::NEG_INFINITY } else { kept.iter().sum::<f64>() / kept.len() as f64 };
    Denoised {
        ids: row.tokens,
        positions: row.slots,
        generated,
        scores: row.scores,
        mean_logprob,
        steps,
        trajectory: record.then_some(Trajectory { canvases: history }),
        logprobs: None,
    }
}
