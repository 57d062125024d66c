//! The layer over slices of several sequences' positions, with the keys and values of the
//! other positions taken from each sequence's cache: Fast-dLLM's `layer_past`
//! (`torch.cat((past_key, k))` for the prefix cache, `past_key[:, :, replace_indices] = k`
//! for the dual cache) in `modeling_llada.py`'s attention. The reference caches keys before
//! the rotation and rotates the whole key sequence at positions `0..len` on every call; a
//! row's rotation depends only on the row and its position, so caching the rotated keys is
//! the same. Queries are rotated at their absolute positions (the tables of the computed
//! positions). The products run once over all sequences' positions; attention and the
//! splice per sequence.

use super::Layer;
use crate::elementwise::Keys;
use crate::error::Result;
use crate::kv_cache::{cross_attention, splice};
use crate::llama::cache::Computed;
use candle_core::{DType, Tensor};
use std::sync::Arc;

impl Layer {
    /// `x`: [Σ n, hidden], the states of each sequence's computed positions, stacked in
    /// the order of `rows`; `cos`, `sin`: [Σ n, 1, head_dim] of those positions. `past[r]`:
    /// this layer's cached (keys, values) `[len, kv_heads, head_dim]` of sequence r, `None`
    /// when it is computed whole (a full forward, attention as [`Layer::forward`] runs it
    /// over that sequence). Returns the new states [Σ n, hidden] and, per sequence, the
    /// keys and values of the whole sequence: `past` with the computed positions replaced by
    /// the fresh ones.
    pub(crate) fn forward_cached(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        rows: &[Computed],
        past: &[Option<&(Tensor, Tensor)>],
        dtype: DType,
    ) -> Result<(Tensor, Vec<(Tensor, Tensor)>)> {
        let (q, k, v) = self.rotated_qkv(x, cos, sin)?; // [Σ n, heads, d], [Σ n, kv_heads, d] ×2
        let mut contexts = Vec::with_capacity(rows.len());
        let mut pairs = Vec::with_capacity(rows.len());
        let mut offset = 0;
        for (c, past) in rows.iter().zip(past) {
            let n = c.n();
            let (q, k, v) = (q.narrow(0, offset, n)?, k.narrow(0, offset, n)?, v.narrow(0, offset, n)?);
            offset += n;
            let (context, keys, values) = match past {
                None => {
                    // The whole sequence: exactly the attention of `forward` (one packed row).
                    let keys = Keys::Packed { bias: Tensor::zeros(n, dtype, x.device())?, lengths: Arc::from([n]) };
                    (self.self_attention(&q, &k, &v, &keys)?, k, v)
                }
                Some((past_k, past_v)) => {
                    let keys = splice(past_k, &k, &c.runs, c.len)?; // [len, kv_heads, d]
                    let values = splice(past_v, &v, &c.runs, c.len)?;
                    (cross_attention(&q, &keys, &values, None)?, keys, values)
                }
            }; // context [n, h]
            contexts.push(context);
            pairs.push((keys.contiguous()?, values.contiguous()?));
        }
        let context = if contexts.len() == 1 { contexts.pop().expect("one") } else { Tensor::cat(&contexts, 0)? }; // [Σ n, h]
        Ok((self.finish(x, &context)?, pairs))
    }
}
