//! ModernBERT's cached forward ([`crate::MaskedLm::encode_cached`]): one sequence, the
//! positions asked for computed afresh through the pre-LN layers, the keys and values of
//! the others read from a [`KvCache`]. Keys are cached rotated by their absolute position
//! (a row's rotation depends only on the row and its position, so this is the same as
//! rotating the whole key sequence on every call), queries are rotated by theirs, each
//! with the theta of the layer's kind. Every layer attends exactly as the uncached forward
//! does for the same sequence: keys equal to the padding id masked (as
//! [`crate::MaskedLm::encode_rows`] masks them), and in a local layer a query at position
//! p sees only the keys within `local_attention / 2` of p, through the same bias builder
//! (`encoder::query_attention_bias`) restricted to the computed queries' rows. The attention is
//! the uncached layer's own (`Layer::attend`), queries of some positions against the keys
//! of all of them, in the compute dtype.

use super::Encoder;
use super::layer::Layer;
use crate::dropout::Dropout;
use crate::error::Result;
use crate::kv_cache::{KvCache, runs, splice};
use crate::rotary::Rotary;
use candle_core::{DType, Device, Tensor};
use std::ops::Range;

impl Encoder {
    /// `ids`: one sequence; `fresh`: the positions whose final states are returned
    /// ([count, hidden] in order), as ascending runs. `fresh` covering the whole sequence
    /// is the forward of [`Encoder::forward`] for `[ids]` (padding ids masked as keys) and
    /// fills `cache`; otherwise `cache` must hold this sequence's length, and it is updated
    /// at `fresh`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_cached(
        &self,
        ids: &[u32],
        pad: u32,
        fresh: &[Range<usize>],
        cache: &mut KvCache,
        dtype: DType,
        drop: &Dropout,
        device: &Device,
    ) -> Result<Tensor> {
        let len = ids.len();
        let fresh = runs(fresh, len)?;
        let fill = cache.fills(&fresh, len, self.layers.len())?;
        let positions: Vec<usize> = fresh.iter().flat_map(|r| r.clone()).collect();
        let n = positions.len();
        let real: Vec<u32> = ids.iter().map(|&id| u32::from(id != pad)).collect();
        let mask = Tensor::from_vec(real, (1, len), device)?; // [1, len]
        let inputs = self.layer_inputs(&mask, &positions, false, dtype)?;
        let at: Vec<u32> = positions.iter().map(|&p| ids[p]).collect();
        let mut x = self.embed(&Tensor::from_vec(at, (1, n), device)?, drop)?; // [1, n, h]
        let mut kv = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let (bias, rotary) = inputs.of(layer);
            let past = if fill { None } else { Some(&cache.layers[i]) };
            let (y, pair) = layer.forward_cached(&x, &fresh, len, past, bias, rotary, drop)?;
            x = y;
            kv.push(pair);
        }
        cache.len = len;
        cache.layers = kv;
        Ok(self.final_norm.forward(&x)?.squeeze(0)?) // [n, h]
    }
}

/// [1, heads, rows, d] → [rows, heads, d] (the cache's layout; a view).
fn by_position(t: &Tensor) -> candle_core::Result<Tensor> {
    t.squeeze(0)?.transpose(0, 1)
}

impl Layer {
    /// `x`: [1, n, hidden], the states of positions `rows` (ascending runs) of a sequence
    /// of `len`; `bias`: [1, 1, 1 or n, len] additive, this layer's kind's, for those
    /// queries; `rotary`: this layer's kind's tables of those positions. `past`: this
    /// layer's cached (keys, values) `[len, heads, head_dim]`, keys rotated, or `None`
    /// when `rows` is the whole sequence ([`Layer::forward`] itself). Returns the new states
    /// [1, n, hidden] and the keys and values of the whole sequence: `past` with `rows`
    /// replaced by the fresh ones.
    #[allow(clippy::too_many_arguments)]
    fn forward_cached(
        &self,
        x: &Tensor,
        rows: &[Range<usize>],
        len: usize,
        past: Option<&(Tensor, Tensor)>,
        bias: &Tensor,
        rotary: &Rotary,
        drop: &Dropout,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let (q, k, v) = self.rotated_qkv(x, rotary)?; // [1, heads, n, d] each
        let (keys, values) = match past {
            None => (k, v),
            Some((past_k, past_v)) => {
                // [len, heads, d] with `rows` fresh → [1, heads, len, d]
                let whole = |past: &Tensor, fresh: &Tensor| {
                    splice(past, &by_position(fresh)?, rows, len)?.transpose(0, 1)?.unsqueeze(0)
                };
                (whole(past_k, &k)?, whole(past_v, &v)?)
            }
        };
        let context = self.attend(&q, &keys, &values, bias, drop)?; // [1, n, h]
        let x = self.finish(x, &context, drop)?;
        let stored = |t: &Tensor| by_position(t)?.contiguous(); // [len, heads, d]
        Ok((x, (stored(&keys)?, stored(&values)?)))
    }
}
