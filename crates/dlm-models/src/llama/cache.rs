//! The cached forward of the bidirectional Llama ([`crate::MaskedLm::encode_cached_rows`],
//! and [`crate::MaskedLm::encode_cached`] as its one-row case): the positions asked for of
//! each sequence computed afresh, the keys and values of the others read from the
//! sequence's [`KvCache`]. The rows are packed: the embedding lookup, the norms, Q/K/V,
//! the output projection and the MLP run once over every row's computed positions stacked
//! `[Σ n, hidden]`; only attention and the cache splice are per row. Dream's logit shift
//! hands out at position p the network's output at p − 1, so for positions `a..b` with
//! `a > 0` the network computes `a − 1..b` (one position more, its keys and values fresh
//! too); for a set of runs, each run is widened so.

use super::Encoder;
use crate::error::Result;
use crate::kv_cache::{CachedRow, runs, through_layers};
use candle_core::{DType, Device, Tensor};
use std::ops::Range;

/// One row of a packed cached forward, checked against its cache.
pub(super) struct Computed {
    /// The positions the network computes (ascending runs; Dream's widened).
    pub runs: Vec<Range<usize>>,
    /// The sequence's length.
    pub len: usize,
    /// Whether `runs` is the whole sequence (a full forward that fills the cache).
    pub fill: bool,
}

impl Computed {
    /// How many positions are computed.
    pub fn n(&self) -> usize {
        self.runs.iter().map(|r| r.len()).sum()
    }
}

impl Encoder {
    /// `rows`: sequences, each with the positions whose final states are returned (as
    /// ascending runs; shifted for Dream) and its cache → `[Σ fresh, hidden]`, row by row in
    /// order. A row whose computed positions cover its whole sequence is the computation of
    /// [`Encoder::forward_rows`] for its ids and fills its cache; any other's cache must hold
    /// its sequence's length, and is updated at the computed positions. Every row is checked
    /// before any cache changes.
    pub fn forward_cached(&self, rows: &mut [CachedRow<'_>], dtype: DType, device: &Device) -> Result<Tensor> {
        let mut fresh = Vec::with_capacity(rows.len()); // each row's positions handed out
        let mut plan = Vec::with_capacity(rows.len());
        for row in rows.iter() {
            let len = row.ids.len();
            let asked = runs(row.fresh, len)?;
            let computed = if self.shift { widened(&asked) } else { asked.clone() };
            let fill = row.cache.fills(&computed, len, self.layers.len())?;
            fresh.push(asked);
            plan.push(Computed { runs: computed, len, fill });
        }
        let positions: Vec<u32> = plan.iter().flat_map(|c| c.runs.iter().flat_map(|r| r.start as u32..r.end as u32)).collect();
        let mut at = Vec::with_capacity(positions.len());
        for (row, c) in rows.iter().zip(&plan) {
            at.extend(c.runs.iter().flat_map(|r| r.clone()).map(|p| row.ids[p]));
        }
        let n = at.len();
        let x = self.word.index_select(&Tensor::from_vec(at, n, device)?, 0)?; // [Σ n, h]
        let (cos, sin) = self.rope.tables(&positions, x.dtype(), x.device())?; // [Σ n, 1, d] each
        let fills: Vec<bool> = plan.iter().map(|c| c.fill).collect();
        let x = through_layers(rows, &fills, &self.layers, x, |layer, x, past| layer.forward_cached(x, &cos, &sin, &plan, past, dtype))?;
        let x = self.norm.forward(&x)?; // [Σ n, h]
        if !self.shift {
            return Ok(x);
        }
        // Dream: position p takes the output at p − 1 (position 0 keeps its own), found
        // among the row's computed positions.
        let mut index = Vec::new();
        let mut offset = 0;
        for (asked, c) in fresh.iter().zip(&plan) {
            let computed = &positions[offset..offset + c.n()]; // the row's, ascending
            let at = |p: usize| (offset + computed.binary_search(&(p.saturating_sub(1) as u32)).expect("widened")) as u32;
            index.extend(asked.iter().flat_map(|r| r.clone()).map(at));
            offset += computed.len();
        }
        let m = index.len();
        Ok(x.index_select(&Tensor::from_vec(index, m, device)?, 0)?)
    }
}

/// Each run `a..b` widened to `a − 1..b` (Dream's shift), touching or overlapping runs merged.
fn widened(asked: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(asked.len());
    for r in asked.iter().map(|r| r.start.saturating_sub(1)..r.end) {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}
