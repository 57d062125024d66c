//! The layer over a slice of one sequence's positions, with the keys and values of the
//! other positions taken from a cache: Fast-dLLM's `layer_past` (`torch.cat((past_key, k))`
//! for the prefix cache, `past_key[:, :, replace_indices] = k` for the dual cache) in
//! `modeling_llada.py`'s attention. The reference caches keys before the rotation and
//! rotates the whole key sequence at positions `0..len` on every call; a row's rotation
//! depends only on the row and its position, so caching the rotated keys is the same.
//! Queries are rotated at their absolute positions (the tables of `rows`).

use super::Layer;
use crate::dense::Linear;
use crate::elementwise::{Keys, attention};
use crate::error::Result;
use crate::kv_cache::{cross_attention, splice};
use crate::llama::rope::Rope;
use candle_core::{D, Tensor};
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
        let (n, h) = x.dims2()?;
        let d = h / self.heads;
        let normed = self.attn_norm.forward(x)?;
        let qkv = match &self.qkv {
            Some(qkv) => qkv.forward(&normed)?,
            None => Linear::forward_cat(&[&self.q, &self.k, &self.v], &normed)?,
        }; // [n, h + 2·kv·d]
        let kv = self.kv_heads * d;
        let q = Rope::apply(&qkv.narrow(1, 0, h)?.reshape((n, self.heads, d))?, cos, sin)?; // [n, heads, d]
        let k = Rope::apply(&qkv.narrow(1, h, kv)?.reshape((n, self.kv_heads, d))?, cos, sin)?; // [n, kv_heads, d]
        let v = qkv.narrow(1, h + kv, kv)?.reshape((n, self.kv_heads, d))?;
        let (context, keys, values) = match past {
            None => {
                // The whole sequence: exactly the attention of `forward` (one packed row).
                let bias = match key_bias {
                    Some(b) => b.clone(),
                    None => Tensor::zeros(n, x.dtype(), x.device())?,
                };
                let keys = Keys::Packed { bias, lengths: Arc::from([n]) };
                let (ke, ve) = (self.repeat_kv(&k)?, self.repeat_kv(&v)?); // [n, heads, d]
                let fused = Tensor::cat(&[q.reshape((n, h))?, ke.reshape((n, h))?, ve.reshape((n, h))?], 1)?; // [n, 3h]
                (attention(&fused, &keys, self.heads, None)?, k, v)
            }
            Some((past_k, past_v)) => {
                let keys = splice(past_k, &k, rows, len)?; // [len, kv_heads, d]
                let values = splice(past_v, &v, rows, len)?;
                (cross_attention(&q, &keys, &values, None)?, keys, values)
            }
        }; // context [n, h]
        let x = (x + self.o.forward(&context)?)?;
        let normed = self.mlp_norm.forward(&x)?;
        let (gate, up) = match &self.gate_up {
            Some(gu) => {
                let both = gu.forward(&normed)?; // [n, 2f]
                let f = both.dim(D::Minus1)? / 2;
                (both.narrow(D::Minus1, 0, f)?, both.narrow(D::Minus1, f, f)?)
            }
            None => (self.gate.forward(&normed)?, self.up.forward(&normed)?),
        };
        let inner = (gate.silu()? * up)?; // [n, f]
        Ok(((x + self.down.forward(&inner)?)?, (keys.contiguous()?, values.contiguous()?)))
    }
}
