//! The cached forward of the bidirectional Llama ([`crate::MaskedLm::encode_cached`]):
//! one sequence, the positions asked for computed afresh, the keys and values of the
//! others read from a [`KvCache`]. Dream's logit shift hands out at position p the
//! network's output at p − 1, so for positions `a..b` with `a > 0` the network computes
//! `a − 1..b` (one position more, its keys and values fresh too); for a set of runs, each
//! run is widened so.

use super::Encoder;
use crate::error::Result;
use crate::kv_cache::{KvCache, runs};
use candle_core::{DType, Device, Tensor};
use std::ops::Range;

impl Encoder {
    /// `ids`: one sequence; `fresh`: the positions whose final states are returned
    /// ([count, hidden] in order, shifted for Dream), as ascending runs. A `fresh` that
    /// (after Dream's widening) covers the whole sequence is a full forward, the same
    /// computation as [`Encoder::forward_rows`] of `[ids]`, and fills `cache`; otherwise
    /// `cache` must hold this sequence's length, and it is updated at the computed positions.
    pub fn forward_cached(
        &self,
        ids: &[u32],
        fresh: &[Range<usize>],
        cache: &mut KvCache,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let len = ids.len();
        let fresh = runs(fresh, len)?;
        // Dream: position p reads the output at p − 1, which is computed too.
        let rows = if self.shift {
            let widened: Vec<Range<usize>> = fresh.iter().map(|r| r.start.saturating_sub(1)..r.end).collect();
            let mut merged: Vec<Range<usize>> = Vec::with_capacity(widened.len());
            for r in widened {
                match merged.last_mut() {
                    Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                    _ => merged.push(r),
                }
            }
            merged
        } else {
            fresh.clone()
        };
        let fill = cache.fills(&rows, len, self.layers.len())?;
        let positions: Vec<u32> = rows.iter().flat_map(|r| r.start as u32..r.end as u32).collect();
        let n = positions.len();
        let at: Vec<u32> = positions.iter().map(|&p| ids[p as usize]).collect();
        let x = self.word.index_select(&Tensor::from_vec(at, n, device)?, 0)?; // [n, h]
        let (cos, sin) = self.rope.tables(&positions, x.dtype(), x.device())?; // [n, 1, d] each
        let bias = if fill { Some(Tensor::zeros(len, dtype, device)?) } else { None };
        let mut x = x;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let past = if fill { None } else { Some(&cache.layers[i]) };
            let (y, kv) = layer.forward_cached(&x, &cos, &sin, &rows, len, past, bias.as_ref())?;
            x = y;
            layers.push(kv);
        }
        cache.len = len;
        cache.layers = layers;
        let x = self.norm.forward(&x)?; // [n, h]
        if !self.shift {
            return Ok(x);
        }
        // Dream: position p takes the output at p − 1 (position 0 keeps its own), found
        // among the computed positions.
        let index: Vec<u32> = fresh
            .iter()
            .flat_map(|r| r.clone())
            .map(|p| positions.binary_search(&(p.saturating_sub(1) as u32)).expect("widened") as u32)
            .collect();
        let m = index.len();
        Ok(x.index_select(&Tensor::from_vec(index, m, device)?, 0)?)
    }
}
