//! Fast-dLLM's KV caches for the semi-autoregressive strategies (`llada`, `fast-dllm`):
//! `generate_with_prefix_cache` and `generate_with_dual_cache` of NVlabs/Fast-dLLM
//! `llada/generate.py` at 24cc59e75f20a6384bae8c905965bb090b96388e, through
//! [`MaskedLm::encode_cached`] (the sampler never sees the architecture).
//!
//! Per block (of `block_length` generation slots):
//! - the block's first step is a full forward over the whole canvas, which fills the cache
//!   and whose predictions decide that step (candidates: every masked slot up to the
//!   block's end, as in `generate`; LLaDA's count: the first of the block's
//!   `get_num_transfer_tokens`, computed from the masks in the block at its start);
//! - every further step computes only part of the canvas — [`Cache::Prefix`]: from the
//!   block's first position to the end of the canvas (`x[:, current_block_start:]`)
//!   against the cached keys and values of everything before; [`Cache::Dual`]: the block
//!   alone against the cached keys and values of both sides — and its candidates are the
//!   masked slots of the block only (`mask_index[:, block_length:] = 0`);
//! - LLaDA (`llada`) runs step i of the block with count `counts[i]` until the block has
//!   no mask or its steps are spent; Fast-dLLM (`fast-dllm`) transfers by its threshold or
//!   factor rule until the block has no mask.
//!
//! Differences from the reference, none of which changes a canvas: the reference checks
//! for an unmasked block only after its cached steps, so when the full forward already
//! filled the block it runs one more forward that transfers nothing (`transfer_counts`
//! has a 0); dlm does not run it. A LLaDA block whose remaining counts are all 0 (masks
//! left by `<mask>` predictions) ends there (the reference runs forwards that transfer
//! nothing and then fails indexing `num_transfer_tokens`), its masks candidates of later
//! blocks' first steps; a Fast-dLLM step that decodes nothing ends its block, as without
//! a cache. Every row has its own cache; the cached forwards of all rows of a step run as
//! one [`MaskedLm::encode_cached_rows`] and their predictions are read off together.

use super::config::{SamplerConfig, Strategy};
use super::predict::{ModelPredictor, Prediction, Readout, Shared, read_off};
use super::state::Row;
use super::unmask::{block_slots, low_confidence_update, parallel_update};
use super::{Denoised, StepEvent, finish_all, llada_blocks, record_step};
use crate::canvas::{Canvas, SpecialIds};
use crate::error::{DiffusionError, Result};
use crate::schedule::transfer_counts;
use candle_core::Tensor;
use dlm_models::{CachedRow, KvCache, MaskedLm};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Which keys and values a run reuses between its steps: Fast-dLLM's prefix and dual
/// caches for the semi-autoregressive strategies (see the module docs), or dKV-Cache's
/// cache of decoded positions refreshed every R steps, for every strategy
/// (`super::refresh`), or that cache reusing unchanged masked positions too (`reuse:R`).
/// Written and read as its name (`"none"`, `"dual"`, `"refresh:4"`), as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cache {
    /// Every step is a full forward over the whole canvas.
    #[default]
    None,
    /// Steps after a block's first compute the block and everything after it, against
    /// the cached keys and values of the positions before the block.
    Prefix,
    /// Steps after a block's first compute the block alone, against the cached keys and
    /// values of the positions before and after it.
    Dual,
    /// dKV-Cache-Decode (Ma et al. 2025, arXiv 2505.15781): a step computes the masked
    /// positions, the positions whose id changed since their keys and values were last
    /// computed and the positions whose prediction the step reads and has none kept; every
    /// other position's keys and values (and, where a strategy reads it, its last
    /// prediction) are reused. Every R-th step (R ≥ 1, counted per block for llada and
    /// fast-dllm, with the block's first two steps) is a full forward that refreshes them
    /// all. `Refresh(1)` is `None`.
    Refresh(usize),
    /// `Refresh` that also reuses `<mask>` positions: a step computes only the positions
    /// whose id changed since their keys and values were last computed and those whose
    /// prediction the step reads and has none kept; every other position, masked or not,
    /// keeps its keys and values and its last prediction until the next refresh. The
    /// issue's rule taken literally ("positions whose token did not change are reused");
    /// dLLM-Cache (arXiv 2506.06295) likewise reuses unchanged response features between
    /// refreshes, but also recomputes an adaptively chosen share of them, which this does
    /// not. `Reuse(1)` is `None`.
    Reuse(usize),
}

impl Cache {
    /// The modes without a parameter.
    pub const ALL: [Cache; 3] = [Cache::None, Cache::Prefix, Cache::Dual];

    /// What [`Cache::parse`] takes, as error messages list it.
    pub const EXPECTED: &str = "none, prefix, dual, refresh:R or reuse:R (R ≥ 1)";

    /// The mode's name (`refresh` without its interval; `Display` writes `refresh:R`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cache::None => "none",
            Cache::Prefix => "prefix",
            Cache::Dual => "dual",
            Cache::Refresh(_) => "refresh",
            Cache::Reuse(_) => "reuse",
        }
    }

    /// `none`, `prefix`, `dual`, `refresh:R` or `reuse:R` (R ≥ 1).
    pub fn parse(name: &str) -> Option<Cache> {
        let interval = |every: &str| every.parse::<usize>().ok().filter(|&r| r >= 1);
        if let Some(every) = name.strip_prefix("refresh:") {
            return interval(every).map(Cache::Refresh);
        }
        if let Some(every) = name.strip_prefix("reuse:") {
            return interval(every).map(Cache::Reuse);
        }
        Cache::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether the mode runs the uncached loop: `none`, and a refresh at every step
    /// (`refresh:1`, `reuse:1`).
    pub fn uncached(self) -> bool {
        matches!(self, Cache::None | Cache::Refresh(1) | Cache::Reuse(1))
    }

    /// `refresh:R` and `reuse:R`: R, and whether a cached step recomputes every masked
    /// position (`refresh`) or reuses the unchanged ones (`reuse`).
    pub(crate) fn interval(self) -> Option<(usize, bool)> {
        match self {
            Cache::Refresh(every) => Some((every, true)),
            Cache::Reuse(every) => Some((every, false)),
            _ => None,
        }
    }

    /// Prefix and dual caches are for the semi-autoregressive strategies only; a refresh
    /// interval is at least 1.
    pub(crate) fn check(self, strategy: &Strategy) -> Result<()> {
        let other = match strategy {
            _ if self == Cache::None => return Ok(()),
            _ if self.interval().is_some_and(|(every, _)| every == 0) => {
                return Err(DiffusionError::InvalidConfig(format!("cache {}:R needs an interval R of at least 1", self.as_str())));
            }
            _ if self.interval().is_some() => return Ok(()),
            Strategy::LowConfidence { .. } | Strategy::ConfidenceThreshold { .. } => return Ok(()),
            Strategy::Reparam { .. } => "the reparameterized strategies (reparam-uncond, reparam-cond, stochastic)",
            Strategy::Cmlm => "cmlm",
            Strategy::Ar => "ar",
            Strategy::Dream { .. } => "dream",
        };
        Err(DiffusionError::InvalidConfig(format!(
            "cache {:?} applies only to the semi-autoregressive strategies llada and fast-dllm, not to {other} \
             (use cache none, refresh:R or reuse:R)",
            self.as_str()
        )))
    }
}

impl Serialize for Cache {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cache {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Cache, D::Error> {
        let name = String::deserialize(d)?;
        Cache::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown cache {name:?}: expected {}", Cache::EXPECTED))
        })
    }
}

impl std::fmt::Display for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cache::Refresh(every) => write!(f, "refresh:{every}"),
            Cache::Reuse(every) => write!(f, "reuse:{every}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// One row's place in its blocks, and its cache.
pub(crate) struct State {
    /// Generation slots per block and (LLaDA) steps per block.
    len: usize,
    per_block: Option<usize>,
    blocks: usize,
    /// The current block and the steps it has run (0: the next step fills the cache).
    block: usize,
    i: usize,
    /// LLaDA: the current block's transfer counts, from its masks at its start.
    counts: Vec<usize>,
    cache: KvCache,
}

/// What a row does in a step: the canvas positions computed afresh, the candidate slots
/// and (LLaDA) how many of them are transferred.
pub(crate) struct Work {
    fresh: Range<usize>,
    pub candidates: Vec<usize>,
    count: usize,
}

impl Work {
    /// The final states at the candidates `[candidates, h]` out of the row's cached
    /// forward for this step, `hidden` `[fresh, h]`, and their canvas positions.
    pub fn select(&self, row: &Row, hidden: &Tensor) -> Result<(Tensor, Vec<usize>)> {
        let at = row.positions(&self.candidates);
        let index: Vec<u32> = at.iter().map(|&p| (p - self.fresh.start) as u32).collect();
        let selected = hidden.index_select(&Tensor::from_vec(index, at.len(), hidden.device())?, 0)?;
        Ok((selected, at))
    }

    /// How many positions the row's cached forward computes.
    pub fn fresh_len(&self) -> usize {
        self.fresh.len()
    }
}

impl State {
    pub fn new(row: &Row, cfg: &SamplerConfig) -> Result<State> {
        let n = row.n();
        let (len, per_block) = match cfg.strategy {
            Strategy::LowConfidence { block_length, .. } => {
                let (len, per_block) = llada_blocks(n, block_length, cfg.steps)?;
                (len, Some(per_block))
            }
            Strategy::ConfidenceThreshold { block_length, .. } => (block_length.unwrap_or(n).clamp(1, n.max(1)), None),
            _ => return Err(DiffusionError::InvalidConfig("a KV cache needs the llada or fast-dllm strategy".into())),
        };
        Ok(State { len, per_block, blocks: n.div_ceil(len), block: 0, i: 0, counts: Vec::new(), cache: KvCache::new() })
    }

    fn next_block(&mut self) {
        self.block += 1;
        self.i = 0;
        self.counts.clear();
        self.cache.clear();
    }

    /// The row's next step, or `None` when it is done.
    pub fn plan(&mut self, row: &Row, cache: super::Cache) -> Option<Work> {
        let n = row.n();
        let masked_in = |range: Range<usize>| range.filter(|&j| row.masked[j]).collect::<Vec<_>>();
        while row.masked_count() > 0 && self.block < self.blocks {
            let range = block_slots(self.block, self.len, n);
            let in_block = masked_in(range.clone());
            if in_block.is_empty() {
                self.next_block();
                continue;
            }
            if self.i == 0 {
                // The full forward: fills the cache; candidates up to the block's end.
                if let Some(per_block) = self.per_block {
                    self.counts = transfer_counts(in_block.len(), per_block);
                }
                let count = self.counts.first().copied().unwrap_or(0);
                return Some(Work { fresh: 0..row.tokens.len(), candidates: masked_in(0..range.end), count });
            }
            let count = match self.per_block {
                Some(_) => match self.counts.get(self.i) {
                    Some(&c) if c > 0 => c,
                    _ => {
                        // Steps spent, or only zero counts left: the block cannot change.
                        self.next_block();
                        continue;
                    }
                },
                None => 0,
            };
            let start = row.slots[range.start];
            let end = match cache {
                super::Cache::Dual => row.slots[range.end - 1] + 1,
                _ => row.tokens.len(),
            };
            return Some(Work { fresh: start..end, candidates: in_block, count });
        }
        None
    }

    /// The row's cached forward for its step `w`, to run with other rows' in one
    /// [`MaskedLm::encode_cached_rows`] (its states then go to [`Work::select`]).
    pub fn cached_row<'a>(&'a mut self, row: &'a Row, w: &'a Work) -> CachedRow<'a> {
        CachedRow { ids: &row.tokens, fresh: std::slice::from_ref(&w.fresh), cache: &mut self.cache }
    }

    /// Applies step `w` to the row given the predictions at its candidates, and moves on.
    pub fn apply(&mut self, row: &mut Row, w: &Work, preds: &[Prediction], strategy: &Strategy, rng: &mut ChaCha8Rng, mask: u32) {
        let decoded = match *strategy {
            Strategy::LowConfidence { remasking, .. } => {
                low_confidence_update(row, &w.candidates, preds, w.count, remasking, rng, mask);
                true
            }
            Strategy::ConfidenceThreshold { rule, .. } => parallel_update(row, &w.candidates, preds, rule, mask),
            _ => unreachable!("State::new admits only the block strategies"),
        };
        self.i += 1;
        if self.per_block.is_none() && !decoded {
            // Fast-dLLM's stuck step (every transfer predicted `<mask>`): on to the next block.
            self.next_block();
        }
    }

    /// Bytes held by the row's keys and values.
    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }
}

/// [`super::denoise_with`] with `cfg.cache` prefix or dual.
pub(crate) fn run_cached(
    model: &dyn MaskedLm,
    canvases: &[Canvas],
    cfg: &SamplerConfig,
    special: SpecialIds,
    on_step: &mut dyn FnMut(StepEvent<'_>),
) -> Result<Vec<Denoised>> {
    ModelPredictor::new(model, special.pad, special.mask)?; // the mask id fits the vocabulary
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut rows: Vec<Row> = canvases.iter().map(Row::new).collect();
    let mut states: Vec<State> = rows.iter().map(|r| State::new(r, cfg)).collect::<Result<_>>()?;
    let mut history: Vec<Vec<Vec<u32>>> = vec![Vec::new(); rows.len()];
    let readout = Readout::of(&cfg.strategy);
    let mut steps_run = 0;
    for step in 1.. {
        let work: Vec<Option<Work>> = rows.iter().zip(&mut states).map(|(r, s)| s.plan(r, cfg.cache)).collect();
        if work.iter().all(Option::is_none) {
            break;
        }
        // Every row's cached forward in one.
        let mut cached: Vec<CachedRow> = Vec::new();
        for ((state, row), w) in states.iter_mut().zip(&rows).zip(&work) {
            if let Some(w) = w {
                cached.push(state.cached_row(row, w));
            }
        }
        let hidden = model.encode_cached_rows(&mut cached, special.pad)?; // [Σ fresh, h]
        let mut selected = Vec::new();
        let mut positions = vec![Vec::new(); rows.len()];
        let mut offset = 0;
        for (i, w) in work.iter().enumerate() {
            let Some(w) = w else { continue };
            let (hidden, at) = w.select(&rows[i], &hidden.narrow(0, offset, w.fresh_len())?)?;
            offset += w.fresh_len();
            selected.push(hidden);
            positions[i] = at;
        }
        let selected = Tensor::cat(&selected, 0)?; // [Σ candidates, h]
        let predictions =
            read_off(model, special.mask, &selected, &positions, &mut Shared { decoding: cfg.decoding, readout, rng: &mut rng })?;
        for (i, preds) in predictions.into_iter().enumerate() {
            let Some(w) = &work[i] else { continue };
            states[i].apply(&mut rows[i], w, &preds, &cfg.strategy, &mut rng, special.mask);
        }
        steps_run += 1;
        record_step(step, &rows, &mut history, cfg.record_trajectory, on_step);
    }
    Ok(finish_all(rows, history, steps_run, cfg.record_trajectory, special))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sampler::{Decoding, Parallel, Remasking, StepBatch, denoise, denoise_with};
    use crate::testing::ToyLm;
    use candle_core::{DType, Device};
    use std::cell::RefCell;

    pub(crate) const SP: SpecialIds = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 3 };

    /// [`ToyLm`] with an exact "cache" (every cached forward is the full forward, sliced)
    /// that records each call's (sequence length, fresh positions), and `<mask>` never
    /// predicted (so no block is left with masks and the cached candidates are the
    /// uncached ones). `sets` records the runs of every call, `calls` the calls of one run
    /// (prefix and dual).
    pub(crate) struct Probe {
        lm: ToyLm,
        calls: RefCell<Vec<(usize, Range<usize>)>>,
        pub sets: RefCell<Vec<(usize, Vec<Range<usize>>)>>,
        /// Positions encoded by uncached forwards (`encode_rows`).
        pub uncached: RefCell<usize>,
    }

    impl Probe {
        pub fn new() -> Probe {
            Probe {
                lm: ToyLm::new(40, 16, 32, 11),
                calls: RefCell::new(Vec::new()),
                sets: RefCell::new(Vec::new()),
                uncached: RefCell::new(0),
            }
        }
    }

    impl MaskedLm for Probe {
        fn encode(&self, ids: &Tensor, attention_mask: &Tensor) -> dlm_models::Result<Tensor> {
            self.lm.encode(ids, attention_mask)
        }
        fn encode_rows(&self, rows: &[&[u32]], pad: u32) -> dlm_models::Result<Tensor> {
            *self.uncached.borrow_mut() += rows.iter().map(|r| r.len()).sum::<usize>();
            dlm_models::padded_encode_rows(self, rows, pad)
        }
        fn encode_cached(&self, ids: &[u32], pad: u32, fresh: &[Range<usize>], _cache: &mut KvCache) -> dlm_models::Result<Tensor> {
            if let [one] = fresh {
                self.calls.borrow_mut().push((ids.len(), one.clone()));
            }
            self.sets.borrow_mut().push((ids.len(), fresh.to_vec()));
            let all = dlm_models::padded_encode_rows(self, &[ids], pad)?;
            let parts = fresh.iter().map(|r| all.narrow(0, r.start, r.len())).collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Tensor::cat(&parts, 0)?)
        }
        fn project(&self, hidden: &Tensor) -> dlm_models::Result<Tensor> {
            let logits = self.lm.project(hidden)?;
            let v = self.vocab_size();
            let bias: Vec<f32> = (0..v).map(|i| if i == SP.mask as usize { -1e4 } else { 0.0 }).collect();
            Ok(logits.broadcast_add(&Tensor::from_vec(bias, v, &Device::Cpu)?)?)
        }
        fn vocab_size(&self) -> usize {
            self.lm.vocab_size()
        }
        fn hidden_size(&self) -> usize {
            self.lm.hidden_size()
        }
        fn max_sequence_length(&self) -> usize {
            self.lm.max_sequence_length()
        }
        fn device(&self) -> &Device {
            self.lm.device()
        }
        fn dtype(&self) -> DType {
            DType::F32
        }
    }

    pub(crate) fn canvases(prompts: &[(usize, usize)]) -> Vec<Canvas> {
        prompts
            .iter()
            .map(|&(p, l)| {
                let prefix: Vec<u32> = std::iter::once(SP.bos).chain((0..p as u32).map(|i| 10 + i)).collect();
                Canvas::new(&prefix, l, SP).unwrap()
            })
            .collect()
    }

    /// The distinct canvases in order.
    pub(crate) fn states(d: &Denoised) -> Vec<Vec<u32>> {
        let mut out: Vec<Vec<u32>> = Vec::new();
        for c in &d.trajectory.as_ref().unwrap().canvases {
            if out.last() != Some(c) {
                out.push(c.clone());
            }
        }
        out
    }

    fn block_strategies() -> Vec<(usize, Strategy)> {
        vec![
            (6, Strategy::LowConfidence { block_length: Some(3), remasking: Remasking::LowConfidence }),
            (4, Strategy::LowConfidence { block_length: Some(4), remasking: Remasking::LowConfidence }),
            (1, Strategy::ConfidenceThreshold { rule: Parallel::Threshold(0.3), block_length: Some(3) }),
            (1, Strategy::ConfidenceThreshold { rule: Parallel::Threshold(0.9), block_length: Some(4) }),
            (1, Strategy::ConfidenceThreshold { rule: Parallel::Factor(1.0), block_length: Some(3) }),
        ]
    }

    #[test]
    fn with_an_exact_cache_the_cached_runs_are_the_uncached_runs() {
        // When the cached forward returns what the full forward would, prefix and dual
        // runs pass through the same canvases as runs without a cache.
        let lm = Probe::new();
        let cs = canvases(&[(3, 6), (0, 8), (5, 2)]);
        for (steps, strategy) in block_strategies() {
            let plain = SamplerConfig { steps, strategy, record_trajectory: true, ..SamplerConfig::default() };
            let want = denoise(&lm, &cs, &plain, SP).unwrap();
            for cache in [Cache::Prefix, Cache::Dual] {
                let out = denoise(&lm, &cs, &SamplerConfig { cache, ..plain.clone() }, SP).unwrap();
                for (o, w) in out.iter().zip(&want) {
                    assert_eq!(o.ids, w.ids, "{strategy:?} {cache:?}");
                    assert_eq!(states(o), states(w), "{strategy:?} {cache:?}");
                    assert!(!o.ids.contains(&SP.mask));
                }
            }
        }
    }

    #[test]
    fn each_block_fills_the_cache_once_then_computes_its_part() {
        // One canvas <s> p p | 6 slots in blocks of 3 | </s> (len 10, slots at 3..9), LLaDA
        // with 3 steps per block: per block a full forward, then two cached forwards over
        // the block to the end (prefix) or the block alone (dual).
        let lm = Probe::new();
        let cs = canvases(&[(2, 6)]);
        let strategy = Strategy::LowConfidence { block_length: Some(3), remasking: Remasking::LowConfidence };
        for (cache, parts) in [(Cache::Prefix, [3..10, 6..10]), (Cache::Dual, [3..6, 6..9])] {
            lm.calls.borrow_mut().clear();
            let cfg = SamplerConfig { steps: 6, strategy, cache, ..SamplerConfig::default() };
            let out = denoise(&lm, &cs, &cfg, SP).unwrap();
            assert_eq!(out[0].steps, 6);
            let [first, second] = parts;
            let want = vec![(10, 0..10), (10, first.clone()), (10, first), (10, 0..10), (10, second.clone()), (10, second)];
            assert_eq!(*lm.calls.borrow(), want, "{cache:?}");
        }
        // Fast-dLLM at threshold 0 transfers a whole block per full forward: no cached step.
        lm.calls.borrow_mut().clear();
        let strategy = Strategy::ConfidenceThreshold { rule: Parallel::Threshold(0.0), block_length: Some(3) };
        let cfg = SamplerConfig { steps: 1, strategy, cache: Cache::Dual, ..SamplerConfig::default() };
        assert_eq!(denoise(&lm, &cs, &cfg, SP).unwrap()[0].steps, 2);
        assert_eq!(*lm.calls.borrow(), vec![(10, 0..10), (10, 0..10)]);
    }

    #[test]
    fn sampled_cached_runs_are_seeded() {
        let lm = Probe::new();
        let cs = canvases(&[(3, 6)]);
        let cfg = SamplerConfig {
            steps: 6,
            strategy: Strategy::LowConfidence { block_length: Some(3), remasking: Remasking::Random },
            decoding: Decoding::Sample { temperature: 1.0 },
            seed: 5,
            cache: Cache::Dual,
            ..SamplerConfig::default()
        };
        assert_eq!(denoise(&lm, &cs, &cfg, SP).unwrap(), denoise(&lm, &cs, &cfg, SP).unwrap());
        let mut events = 0;
        let out = denoise_with(&lm, &cs, &SamplerConfig { record_trajectory: true, ..cfg }, SP, &mut |_| events += 1).unwrap();
        assert_eq!(out[0].steps, events);
        assert_eq!(out[0].trajectory.as_ref().unwrap().canvases.len(), events);
    }

    #[test]
    fn caches_are_refused_where_they_do_not_apply() {
        let cs = canvases(&[(3, 6)]);
        let lm = Probe::new();
        for strategy in [Strategy::Cmlm, Strategy::Ar, SamplerConfig::default().strategy] {
            let cfg = SamplerConfig { strategy, cache: Cache::Prefix, ..SamplerConfig::default() };
            let e = denoise(&lm, &cs, &cfg, SP).unwrap_err().to_string();
            assert!(e.contains("llada and fast-dllm") && e.contains("refresh:R"), "{e}");
        }
        // A model without a cached forward.
        let toy = ToyLm::new(40, 16, 32, 11);
        let strategy = Strategy::LowConfidence { block_length: Some(3), remasking: Remasking::LowConfidence };
        let cfg = SamplerConfig { steps: 6, strategy, cache: Cache::Dual, ..SamplerConfig::default() };
        let e = denoise(&toy, &cs, &cfg, SP).unwrap_err().to_string();
        assert!(e.contains("no cached forward"), "{e}");
        // Nor in step-level batching, where the row is refused when it is added.
        let mut batch = StepBatch::new(&toy, SP).unwrap();
        for cache in [Cache::Dual, Cache::Refresh(2)] {
            let e = batch.add(&cs[0], SamplerConfig { cache, ..cfg.clone() }).unwrap_err().to_string();
            assert!(e.contains("no cached forward"), "{e}");
        }
        assert!(batch.is_empty());
        assert_eq!(Cache::ALL.map(|c| Cache::parse(c.as_str())), Cache::ALL.map(Some));
        assert_eq!(Cache::parse("refresh:4"), Some(Cache::Refresh(4)));
        assert_eq!(Cache::Refresh(4).to_string(), "refresh:4");
        assert_eq!(Cache::parse("reuse:3"), Some(Cache::Reuse(3)));
        assert_eq!(Cache::Reuse(3).to_string(), "reuse:3");
        for bad in ["refresh", "refresh:0", "refresh:x", "refresh:-1", "reuse", "reuse:0", "reuse:2:1", "both"] {
            assert_eq!(Cache::parse(bad), None, "{bad}");
            assert!(serde_json::from_str::<Cache>(&format!("{bad:?}")).is_err(), "{bad}");
        }
        for c in [Cache::None, Cache::Prefix, Cache::Dual, Cache::Refresh(7), Cache::Reuse(5)] {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{c}\""));
            assert_eq!(serde_json::from_str::<Cache>(&json).unwrap(), c);
        }
        for cache in [Cache::Refresh(0), Cache::Reuse(0)] {
            let cfg = SamplerConfig { cache, ..SamplerConfig::default() };
            let e = denoise(&lm, &cs, &cfg, SP).unwrap_err().to_string();
            assert!(e.contains("at least 1") && e.contains(cache.as_str()), "{e}");
        }
    }
}
