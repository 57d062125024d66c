//! `cache refresh:R`: dKV-Cache-Decode (Ma, Yu, Fang, Wang, "dKV-Cache: The Cache for
//! Diffusion Language Models", arXiv 2505.15781: delayed caching of decoded tokens' keys
//! and values with a periodic cache refresh),
//! as its LLaDA code computes it (horseee/dKV-Cache `generation_utils/llada_dkv_cache_decode.py`
//! at 49a76fcc43b744ec2d960137f216e419317138b1, `enable_cache=True,
//! cache_reloading_step=R`), behind the ordinary step loop ([`super::run`]) as a
//! [`Predictor`], so every strategy takes it.
//!
//! Per row, a [`KvCache`] and, per canvas position, the id its cached keys and values were
//! computed from and the prediction read off at that computation (if one was). A step is
//! - **a refresh** (a full forward over the canvas, which refills the cache) at the row's
//!   step i when `i % R == 0`. For the block strategies (`llada`, `fast-dllm`) i counts the
//!   steps of the current block, the cache is dropped at a block's start and step 1 of a
//!   block is a refresh too, as in the reference (its block starts with `past_qkv = None`,
//!   its step 0 caches nothing and its step 1 is a full forward that fills the cache);
//!   for the others i counts the steps of the run (the reference's Dream loop,
//!   `dream_generation_utils.py`, refreshes at `i % cache_steps == 0` the same way);
//! - **otherwise cached**: the forward ([`MaskedLm::encode_cached`]; the rows of a step
//!   in one [`MaskedLm::encode_cached_rows`]) computes the
//!   positions that hold `<mask>` (dKV-Cache never caches a masked token), the positions
//!   whose id differs from the one their keys and values were computed from (the one-step
//!   delay: a token decoded at step t is computed with its id at step t + 1, cached from
//!   t + 2 on; the reference's `~prv_transfer_idx`), and the positions whose prediction the
//!   step reads but has none kept; every other position's keys and values come from the
//!   cache. A position the step reads that was not computed (a decoded token, unchanged)
//!   is handed the prediction of the step that last computed it: the reference never reads
//!   a decoded position, but RDM's reparameterized strategies rank every slot (and `cmlm`
//!   and `ar` store every slot's score), and with its keys and values reused a decoded
//!   position has no query — its final state is reused too, on dKV-Cache's own premise that
//!   a decoded token's representation is stable until the next refresh (dLLM-Cache,
//!   arXiv 2506.06295, reuses the final features of unchanged response tokens the same way).
//!
//! `cache reuse:R` is the same predictor with one rule changed: a cached step does not
//! recompute a `<mask>` position whose keys and values were computed from `<mask>`; it
//! reuses them and the position's last prediction like any other unchanged position's
//! (the rule, "positions whose token did not change are reused", taken literally;
//! dLLM-Cache reuses unchanged response features between refreshes the same way, but also
//! recomputes an adaptively chosen share of them, which this does not). Between refreshes
//! a masked slot's prediction is then the one of the step that last computed it: the
//! strategies rank and decode from those, so `reuse:R` trades more of the output for
//! fewer positions than `refresh:R` (both measured in `docs/caching.md`).
//!
//! A refresh due at a step that runs no forward (LLaDA's zero-count steps, whose canvas
//! does not change) is run at the row's next forward. `Refresh(1)` and `Reuse(1)` never
//! reach this code: they refresh at every step and are the uncached loop
//! ([`super::denoise_with`]).

use super::config::Strategy;
use super::predict::{Draws, Prediction, Predictor, read_off};
use crate::canvas::SpecialIds;
use crate::error::{DiffusionError, Result};
use candle_core::Tensor;
use dlm_models::{CachedRow, KvCache, MaskedLm};
use std::ops::Range;

/// One row's cache and what it was computed from.
#[derive(Default)]
struct RowCache {
    /// The block of the row's last step (`None` before its first) and the steps it has
    /// seen in it.
    block: Option<usize>,
    i: usize,
    /// A refresh fell on a step that ran no forward.
    pending: bool,
    cache: KvCache,
    /// Per canvas position: the id its cached keys and values were computed from (`None`:
    /// nothing cached).
    computed: Vec<Option<u32>>,
    /// Per canvas position: the prediction read off at that computation, when one was.
    kept: Vec<Option<Prediction>>,
}

impl RowCache {
    fn reset(&mut self, len: usize) {
        self.cache.clear();
        self.computed = vec![None; len];
        self.kept = vec![None; len];
    }
}

/// The model with a dKV-Cache per row (see the module docs).
pub(crate) struct RefreshPredictor<'a> {
    model: &'a dyn MaskedLm,
    pad: u32,
    mask: u32,
    every: usize,
    /// A cached step recomputes every masked position (`refresh:R`), or only those whose
    /// id changed (`reuse:R`).
    masked: bool,
    /// LLaDA's reference schedule: block steps, the cache dropped per block, step 1 full.
    blocks: bool,
    rows: Vec<RowCache>,
    /// The run's index and block of each row of the coming call.
    step_rows: Vec<(usize, usize)>,
}

impl<'a> RefreshPredictor<'a> {
    /// `(every, masked)`: the refresh interval, and whether a cached step recomputes every
    /// masked position (`refresh:R`) or reuses the unchanged ones (`reuse:R`).
    pub fn new(model: &'a dyn MaskedLm, special: SpecialIds, (every, masked): (usize, bool), strategy: &Strategy) -> Result<Self> {
        super::predict::ModelPredictor::new(model, special.pad, special.mask)?; // the mask id fits the vocabulary
        let blocks = matches!(strategy, Strategy::LowConfidence { .. } | Strategy::ConfidenceThreshold { .. });
        Ok(RefreshPredictor {
            model,
            pad: special.pad,
            mask: special.mask,
            every: every.max(1),
            masked,
            blocks,
            rows: Vec::new(),
            step_rows: Vec::new(),
        })
    }
}

impl RefreshPredictor<'_> {
    /// Bytes held by the rows' keys and values.
    pub fn cache_bytes(&self) -> usize {
        self.rows.iter().map(|r| r.cache.bytes()).sum()
    }
}

/// The maximal runs of `true` in `fresh`.
fn runs(fresh: &[bool]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (p, _) in fresh.iter().enumerate().filter(|(_, f)| **f) {
        match out.last_mut() {
            Some(last) if last.end == p => last.end = p + 1,
            _ => out.push(p..p + 1),
        }
    }
    out
}

/// A step of a [`RefreshPredictor`] in its phases, so that a caller holding several of
/// them (the server's rows) runs their cached forwards as one
/// [`MaskedLm::encode_cached_rows`] and reads off their predictions together;
/// [`Predictor::predict`] runs them for its own rows.
impl RefreshPredictor<'_> {
    /// Advances each row of the call (`rows_of_step` said which) and returns the positions
    /// its cached forward computes, as runs — empty when it runs none (every prediction
    /// asked for is kept and nothing changed).
    pub fn plan(&mut self, rows: &[&[u32]], positions: &[Vec<usize>]) -> Result<Vec<Vec<Range<usize>>>> {
        if self.step_rows.len() != rows.len() {
            return Err(DiffusionError::InvalidBatch("the refreshed cache was not told which rows a step runs".into()));
        }
        let mut plans = Vec::with_capacity(rows.len());
        for (k, (&ids, want)) in rows.iter().zip(positions).enumerate() {
            let (r, block) = self.step_rows[k];
            if self.rows.len() <= r {
                self.rows.resize_with(r + 1, RowCache::default);
            }
            let st = &mut self.rows[r];
            let len = ids.len();
            if st.block != Some(block) {
                // The row's first step, or (block strategies) a new block: the reference
                // starts every block with an empty cache.
                st.block = Some(block);
                st.i = 0;
                st.pending = false;
                st.reset(len);
            }
            let i = st.i;
            st.i += 1;
            let due = i.is_multiple_of(self.every) || (self.blocks && i == 1) || st.pending;
            if want.is_empty() {
                st.pending = due;
                plans.push(Vec::new());
                continue;
            }
            st.pending = false;
            if st.computed.len() != len {
                return Err(DiffusionError::InvalidBatch("a row's canvas changed length between steps".into()));
            }
            let full = due || st.computed.iter().any(Option::is_none);
            let masked = |p: usize| self.masked && ids[p] == self.mask;
            let mut fresh: Vec<bool> = (0..len).map(|p| full || masked(p) || st.computed[p] != Some(ids[p])).collect();
            for &p in want {
                fresh[p] |= st.kept[p].is_none();
            }
            plans.push(runs(&fresh));
        }
        Ok(plans)
    }

    /// The cached forward's rows for `plans`: per row of the call that runs one, its ids,
    /// runs and cache, in order.
    pub fn cached_rows<'s>(&'s mut self, rows: &[&'s [u32]], plans: &'s [Vec<Range<usize>>]) -> Result<Vec<CachedRow<'s>>> {
        let mut caches: Vec<Option<&mut KvCache>> = self.rows.iter_mut().map(|st| Some(&mut st.cache)).collect();
        let mut out = Vec::new();
        for ((&(r, _), &ids), fresh) in self.step_rows.iter().zip(rows).zip(plans) {
            if fresh.is_empty() {
                continue;
            }
            let cache = caches[r].take().ok_or_else(|| DiffusionError::InvalidBatch("a row ran twice in one step".into()))?;
            out.push(CachedRow { ids, fresh, cache });
        }
        Ok(out)
    }

    /// Records what the cached forward computed — `hidden` `[Σ runs, h]`, the states of the
    /// rows that ran one, in order — and returns the states at the positions asked for that
    /// it computed (`[Σ, h]`, `None` when there are none) and, per row, those positions.
    pub fn absorb(
        &mut self,
        rows: &[&[u32]],
        positions: &[Vec<usize>],
        plans: &[Vec<Range<usize>>],
        hidden: &Tensor,
    ) -> Result<(Option<Tensor>, Vec<Vec<usize>>)> {
        let mut index = Vec::new(); // rows of `hidden` read off
        let mut computed_at = vec![Vec::new(); rows.len()];
        let mut offset = 0;
        for (k, ((&ids, want), fresh)) in rows.iter().zip(positions).zip(plans).enumerate() {
            let st = &mut self.rows[self.step_rows[k].0];
            let mut row_of = vec![None; ids.len()];
            for p in fresh.iter().flat_map(|r| r.clone()) {
                row_of[p] = Some(offset as u32);
                offset += 1;
                st.computed[p] = Some(ids[p]);
                st.kept[p] = None;
            }
            for &p in want {
                if let Some(n) = row_of[p] {
                    index.push(n);
                    computed_at[k].push(p);
                }
            }
        }
        let selected = match index.len() {
            0 => None,
            n => Some(hidden.index_select(&Tensor::from_vec(index, n, self.model.device())?, 0)?),
        };
        Ok((selected, computed_at))
    }

    /// Keeps the predictions read off at `computed_at` (what [`RefreshPredictor::absorb`]
    /// returned) and answers every position asked for.
    pub fn answer(
        &mut self,
        positions: &[Vec<usize>],
        computed_at: &[Vec<usize>],
        predictions: &[Vec<Prediction>],
    ) -> Result<Vec<Vec<Prediction>>> {
        let mut out = Vec::with_capacity(positions.len());
        for (k, want) in positions.iter().enumerate() {
            let st = &mut self.rows[self.step_rows[k].0];
            for (&p, &pred) in computed_at[k].iter().zip(&predictions[k]) {
                st.kept[p] = Some(pred);
            }
            let preds = want
                .iter()
                .map(|&p| st.kept[p].ok_or_else(|| DiffusionError::InvalidBatch("no prediction was kept for a position".into())))
                .collect::<Result<Vec<_>>>()?;
            out.push(preds);
        }
        Ok(out)
    }
}

impl Predictor for RefreshPredictor<'_> {
    fn rows_of_step(&mut self, rows: &[(usize, usize)]) {
        self.step_rows = rows.to_vec();
    }

    /// The phases above, the rows' cached forwards as one.
    fn predict(&mut self, rows: &[&[u32]], positions: &[Vec<usize>], draws: &mut dyn Draws) -> Result<Vec<Vec<Prediction>>> {
        let plans = self.plan(rows, positions)?;
        if plans.iter().all(Vec::is_empty) {
            return self.answer(positions, &vec![Vec::new(); rows.len()], &vec![Vec::new(); rows.len()]);
        }
        let (model, pad) = (self.model, self.pad);
        let hidden = model.encode_cached_rows(&mut self.cached_rows(rows, &plans)?, pad)?; // [Σ runs, h]
        let (selected, computed_at) = self.absorb(rows, positions, &plans, &hidden)?;
        let predictions = match &selected {
            Some(selected) => read_off(model, self.mask, selected, &computed_at, draws)?,
            None => vec![Vec::new(); rows.len()],
        };
        self.answer(positions, &computed_at, &predictions)
    }
}

#[cfg(test)]
mod tests {
    use super::super::cache::tests::{Probe, SP, canvases, states};
    use super::*;
    use crate::sampler::{Cache, Decoding, DreamAlg, Parallel, Remasking, SamplerConfig, Update, denoise};
    use crate::schedule::Schedule;
    use crate::sampler::TopK;

    /// Strategies that read predictions at masked positions only.
    fn masked_only() -> Vec<(usize, Strategy)> {
        vec![
            (6, Strategy::LowConfidence { block_length: Some(3), remasking: Remasking::LowConfidence }),
            (8, Strategy::LowConfidence { block_length: None, remasking: Remasking::LowConfidence }),
            (1, Strategy::ConfidenceThreshold { rule: Parallel::Threshold(0.3), block_length: Some(3) }),
            (1, Strategy::ConfidenceThreshold { rule: Parallel::Factor(1.0), block_length: Some(4) }),
            (5, Strategy::Dream { alg: DreamAlg::Entropy, alg_temp: None, top_p: None, top_k: Some(5) }),
            (5, Strategy::Dream { alg: DreamAlg::Origin, alg_temp: None, top_p: None, top_k: None }),
        ]
    }

    fn every_strategy() -> Vec<(usize, Strategy)> {
        let reparam = |update, topk| Strategy::Reparam { update, schedule: Schedule::Cosine, topk };
        let mut all = masked_only();
        all.extend([
            (6, reparam(Update::Uncond, TopK::Deterministic)),
            (6, reparam(Update::Cond, TopK::Deterministic)),
            (6, reparam(Update::Uncond, TopK::Stochastic { scale: 1.0 })),
            (6, Strategy::Cmlm),
            (8, Strategy::Ar),
        ]);
        all
    }

    fn cfg(steps: usize, strategy: Strategy, cache: Cache) -> SamplerConfig {
        SamplerConfig { steps, strategy, cache, record_trajectory: true, seed: 3, ..SamplerConfig::default() }
    }

    #[test]
    fn refresh_1_and_reuse_1_are_the_uncached_loop() {
        let lm = Probe::new();
        let cs = canvases(&[(3, 6), (0, 8), (5, 2)]);
        for (steps, strategy) in every_strategy() {
            for decoding in [Decoding::Argmax, Decoding::Sample { temperature: 0.7 }] {
                let none = SamplerConfig { decoding, ..cfg(steps, strategy, Cache::None) };
                let want = denoise(&lm, &cs, &none, SP).unwrap();
                for cache in [Cache::Refresh(1), Cache::Reuse(1)] {
                    assert_eq!(denoise(&lm, &cs, &SamplerConfig { cache, ..none.clone() }, SP).unwrap(), want, "{strategy:?} {cache}");
                }
            }
        }
        assert!(lm.sets.borrow().is_empty(), "refresh:1 or reuse:1 ran a cached forward");
    }

    #[test]
    fn with_an_exact_cache_masked_only_strategies_are_the_uncached_runs() {
        // A cached step computes every masked position; when the cached forward returns
        // what the full forward would, the strategies that read masked positions only pass
        // through exactly the uncached canvases, sampled or not, at any interval.
        let lm = Probe::new();
        let cs = canvases(&[(3, 6), (0, 8), (5, 2)]);
        for (steps, strategy) in masked_only() {
            for decoding in [Decoding::Argmax, Decoding::Sample { temperature: 0.7 }] {
                let none = SamplerConfig { decoding, ..cfg(steps, strategy, Cache::None) };
                let want = denoise(&lm, &cs, &none, SP).unwrap();
                for every in [2, 3, 100] {
                    let got = denoise(&lm, &cs, &SamplerConfig { cache: Cache::Refresh(every), ..none.clone() }, SP).unwrap();
                    assert_eq!(got, want, "{strategy:?} {decoding:?} refresh:{every}");
                }
            }
        }
    }

    /// LLaDA over `<s> 10 11 12 | 8 slots | </s>` (13 positions) in blocks of 4, one slot a
    /// step, with `cache` (interval 3): checks that block steps 0, 1 and 3 are refreshes
    /// (full forwards; the cache starts empty at every block) and returns, per cached step,
    /// the canvases before the previous step and before this one, and the positions computed.
    #[allow(clippy::single_range_in_vec_init)] // a set of positions holding one run
    fn llada_cached_steps(cache: Cache) -> Vec<(Vec<u32>, Vec<u32>, Vec<usize>)> {
        let lm = Probe::new();
        let cs = canvases(&[(3, 8)]);
        let strategy = Strategy::LowConfidence { block_length: Some(4), remasking: Remasking::LowConfidence };
        let run = denoise(&lm, &cs, &cfg(8, strategy, cache), SP).unwrap();
        let canvases: Vec<Vec<u32>> =
            std::iter::once(cs[0].ids().to_vec()).chain(run[0].trajectory.clone().unwrap().canvases).collect();
        let sets = lm.sets.borrow();
        assert_eq!(sets.len(), 8, "{cache}: one forward per step (2 blocks of 4 one-slot steps)");
        let mut cached = Vec::new();
        for (step, (len, set)) in sets.iter().enumerate() {
            assert_eq!(*len, 13);
            let i = step % 4; // 4 steps per block
            if i == 0 || i == 1 || i % 3 == 0 {
                assert_eq!(set, &vec![0..13], "{cache} step {step}: a refresh");
            } else {
                let positions = set.iter().flat_map(|r| r.clone()).collect();
                cached.push((canvases[step - 1].clone(), canvases[step].clone(), positions));
            }
        }
        assert_eq!(cached.len(), 2, "{cache}: block step 2 of both blocks");
        cached
    }

    #[test]
    fn cached_steps_compute_the_positions_masked_before_the_previous_step() {
        // The reference's `~prv_transfer_idx`: at a cached step of LLaDA (nothing is ever
        // re-masked, `<mask>` never predicted), the positions computed are those masked in
        // the canvas the previous step started from (so decoded positions are computed once
        // more after they change, then cached).
        for (before_previous, _, positions) in llada_cached_steps(Cache::Refresh(3)) {
            let masked: Vec<usize> = (0..13).filter(|&p| before_previous[p] == SP.mask).collect();
            assert_eq!(positions, masked);
        }
    }

    #[test]
    fn reuse_steps_compute_the_positions_the_previous_step_decoded() {
        // reuse:R at a cached step of LLaDA (nothing re-masked): only the positions whose
        // id changed since they were computed, i.e. those the previous step decoded; the
        // still-masked ones keep their keys, values and predictions.
        for (before_previous, before, positions) in llada_cached_steps(Cache::Reuse(3)) {
            let decoded: Vec<usize> = (0..13).filter(|&p| before_previous[p] == SP.mask && before[p] != SP.mask).collect();
            assert!(!decoded.is_empty() && before.contains(&SP.mask), "a slot decoded, one left");
            assert_eq!(positions, decoded);
        }
    }

    #[test]
    fn every_strategy_runs_cached_and_computes_fewer_positions() {
        // Full-canvas strategies read every slot; decoded unchanged ones get the prediction
        // of the step that last computed them. The runs end with valid canvases (the prompt
        // kept, no more masks left than without the cache) and compute fewer positions than
        // the uncached run. (With blocks of 3 slots, LLaDA's 3 steps per block are all
        // refreshes under refresh:2: block steps 0, 1 and 2.)
        let cs = canvases(&[(6, 6), (2, 9)]);
        for (steps, strategy) in every_strategy() {
            let lm = Probe::new();
            let none = denoise(&lm, &cs, &cfg(steps, strategy, Cache::None), SP).unwrap();
            let uncached = *lm.uncached.borrow();
            for cache in [Cache::Refresh(3), Cache::Refresh(4), Cache::Reuse(3), Cache::Reuse(4)] {
                let lm = Probe::new();
                let run = cfg(steps, strategy, cache);
                let got = denoise(&lm, &cs, &run, SP).unwrap();
                assert_eq!(got, denoise(&lm, &cs, &run, SP).unwrap(), "deterministic");
                let computed: usize =
                    lm.sets.borrow().iter().map(|(_, s)| s.iter().map(|r| r.len()).sum::<usize>()).sum::<usize>() / 2;
                assert_eq!(*lm.uncached.borrow(), 0);
                assert!(computed < uncached, "{strategy:?} {cache}: {computed} positions, uncached {uncached}");
                for ((d, n), c) in got.iter().zip(&none).zip(&cs) {
                    assert_eq!(d.ids.len(), c.ids().len());
                    assert_eq!(d.positions, n.positions);
                    let fixed: Vec<usize> = (0..c.ids().len()).filter(|p| !d.positions.contains(p)).collect();
                    assert!(fixed.iter().all(|&p| d.ids[p] == c.ids()[p]), "{strategy:?}: the prompt changed");
                    // As many masks left as without the cache (ar with fewer steps than slots).
                    let masks = |g: &[u32]| g.iter().filter(|&&t| t == SP.mask).count();
                    assert_eq!(masks(&d.generated), masks(&n.generated), "{strategy:?} {cache}: {:?}", d.generated);
                    assert_eq!(states(d).last(), Some(&d.ids));
                }
            }
        }
    }
}
