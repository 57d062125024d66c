//! The layer over a slice of one sequence's positions, with the keys and values of the
//! other positions taken from a cache: Fast-dLLM's `layer_past` (`torch.cat((past_key, k))`
//! for the prefix cache, `past_key[:, :, replace_indices] = k` for the dual cache) in
//! `modeling_llada.py`'s attention. The reference caches keys before the rotation and
//! rotates the whole key sequence at positions `0..len` on every call; a row's rotation
//! depends only on the row and its position, so caching the rotated keys is the same.
//! Queries are rotated at their absolute positions (the tables of `rows`).

use super::Layer;
use crate::elementwise::Keys;
use crate::error::Result;
use crate::kv_cache::{cross_attention, splice};
use candle_core::Tensor;
use std::ops::Range;
use std::sync::Arc;

impl Layer {
    /// `x`: [n, hidden], the states of positions `rows` (ascending runs) of a sequence of
    /// `len` positions;
    /// `cos`, `sin`: [n, 1, head_dim] of those positions. `past`: this layer's cached
    /// (keys, values) `[len, kv_heads, head_dim]` of the whole sequence, or `None` when
    /// `rows` is the whole sequence (a full forward, attention as [`Layer::forward`] runs
    /// it, with `key_bias` [len] its packed key mask). Returns the new states [n, hidden]
    /// and the keys and values of the whole sequence: `past` with `rows` replaced by the
    /// fresh ones.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_cached(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        rows: &[Range<usize>],
        len: usize,
        past: Option<&(Tensor, Tensor)>,
        key_bias: Option<&Tensor>,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let n = x.dim(0)?;
        let (q, k, v) = self.rotated_qkv(x, cos, sin)?; // [n, heads, d], [n, kv_heads, d] ×2
        let (context, keys, values) = match past {
            None => {
                // The whole sequence: exactly the attention of `forward` (one packed row).
                let bias = match key_bias {
                    Some(b) => b.clone(),
                    None => Tensor::zeros(n, x.dtype(), x.device())?,
                };
                let keys = Keys::Packed { bias, lengths: Arc::from([n]) };
                (self.self_attention(&q, &k, &v, &keys)?, k, v)
            }
            Some((past_k, past_v)) => {
                let keys = splice(past_k, &k, rows, len)?; // [len, kv_heads, d]
                let values = splice(past_v, &v, rows, len)?;
                (cross_attention(&q, &keys, &values, None)?, keys, values)
            }
        }; // context [n, h]
        Ok((self.finish(x, &context)?, (keys.contiguous()?, values.contiguous()?)))
    }
}
