//! The cached forward of the bidirectional Llama ([`crate::MaskedLm::encode_cached`]):
//! one sequence, the positions asked for computed afresh, the keys and values of the
//! others read from a [`KvCache`]. Dream's logit shift hands out at position p the
//! network's output at p − 1, so for positions `a..b` with `a > 0` the network computes
//! `a − 1..b` (one position more, its keys and values fresh too).

use super::Encoder;
use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use candle_core::{DType, Device, Tensor};
use std::ops::Range;

fn invalid(message: String) -> ModelError {
    ModelError::Candle(candle_core::Error::Msg(message))
}

impl Encoder {
    /// `ids`: one sequence; `fresh`: the positions whose final states are returned
    /// ([fresh.len(), hidden], shifted for Dream). A `fresh` that (after Dream's widening)
    /// covers the whole sequence is a full forward, the same computation as
    /// [`Encoder::forward_rows`] of `[ids]`, and fills `cache`; otherwise `cache` must hold
    /// this sequence's length, and it is updated at the computed positions.
    pub fn forward_cached(&self, ids: &[u32], fresh: Range<usize>, cache: &mut KvCache, dtype: DType, device: &Device) -> Result<Tensor> {
        let len = ids.len();
        if fresh.is_empty() || fresh.end > len {
            return Err(invalid(format!("cached forward: positions {fresh:?} are not a non-empty part of a sequence of {len}")));
        }
        let start = if self.shift { fresh.start.saturating_sub(1) } else { fresh.start };
        let rows = start..fresh.end;
        let fill = rows.start == 0 && rows.end == len;
        if !fill && (cache.len != len || cache.layers.len() != self.layers.len()) {
            return Err(invalid(format!(
                "cached forward over positions {fresh:?}: the cache holds {} positions of {} layers, the sequence has {len} \
                 positions and the model {} layers (fill the cache with a forward over the whole sequence first)",
                cache.len,
                cache.layers.len(),
                self.layers.len()
            )));
        }
        let n = rows.len();
        let x = self.word.index_select(&Tensor::from_slice(&ids[rows.clone()], n, device)?, 0)?; // [n, h]
        let positions: Vec<u32> = (rows.start as u32..rows.end as u32).collect();
        let (cos, sin) = self.rope.tables(&positions, x.dtype(), x.device())?; // [n, 1, d] each
        let bias = if fill { Some(Tensor::zeros(len, dtype, device)?) } else { None };
        let mut x = x;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let past = if fill { None } else { Some(&cache.layers[i]) };
            let (y, kv) = layer.forward_cached(&x, &cos, &sin, rows.clone(), len, past, bias.as_ref())?;
            x = y;
            layers.push(kv);
        }
        cache.len = len;
        cache.layers = layers;
        let x = self.norm.forward(&x)?; // [n, h]
        if !self.shift {
            return Ok(x);
        }
        // Dream: position p takes the output at p − 1 (position 0 keeps its own).
        let index: Vec<u32> = fresh.clone().map(|p| (p.saturating_sub(1) - rows.start) as u32).collect();
        Ok(x.index_select(&Tensor::from_vec(index, fresh.len(), device)?, 0)?)
    }
}
