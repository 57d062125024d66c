//! Keys and values kept between forward passes over one sequence, for
//! [`crate::MaskedLm::encode_cached`] (Fast-dLLM's prefix and dual caches). What a layer
//! stores is the backbone's business: callers only create, pass and drop a [`KvCache`].

use candle_core::{D, DType, Tensor};
use std::ops::Range;

/// The keys and values of every attention layer at every position of one sequence, as the
/// forward passes that last computed each position left them.
///
/// Empty when created; [`crate::MaskedLm::encode_cached`] over the whole sequence fills it,
/// calls over a part of the sequence read it outside that part and write the part's fresh
/// keys and values into it.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// The number of positions it covers (0: empty).
    pub(crate) len: usize,
    /// Per layer, the backbone's keys and values, `[len, kv_heads, head_dim]` each (the
    /// Llama body's keys rotated; the BERT family's with `kv_heads` = heads).
    pub(crate) layers: Vec<(Tensor, Tensor)>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// The number of sequence positions the cache holds keys and values for (0 when empty).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets everything (the next cached forward must cover the whole sequence).
    pub fn clear(&mut self) {
        self.len = 0;
        self.layers.clear();
    }
}

/// `past` [len, ...] with its rows `rows` replaced by `fresh` [rows.len(), ...].
pub(crate) fn splice(past: &Tensor, fresh: &Tensor, rows: &Range<usize>, len: usize) -> candle_core::Result<Tensor> {
    if past.dim(0)? != len {
        candle_core::bail!("cached keys cover {} positions, the sequence has {len}", past.dim(0)?);
    }
    let mut parts = Vec::with_capacity(3);
    if rows.start > 0 {
        parts.push(past.narrow(0, 0, rows.start)?);
    }
    parts.push(fresh.clone());
    if rows.end < len {
        parts.push(past.narrow(0, rows.end, len - rows.end)?);
    }
    Tensor::cat(&parts, 0)
}

/// `softmax(q·kᵀ/√d + key_bias)·v` per head, in f32 whatever the compute dtype: `q` [n,
/// heads, d] (queries of some positions) against `k`, `v` [len, kv_heads, d] (keys and
/// values of the whole sequence), each key/value head serving `heads / kv_heads`
/// consecutive query heads (as Llama's `repeat_kv`); `key_bias` [len] additive (padding)
/// → [n, heads·d] in `q`'s dtype. Composed from candle ops (the fused attention kernel
/// wants queries and keys of the same rows).
pub(crate) fn cross_attention(q: &Tensor, k: &Tensor, v: &Tensor, key_bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let (n, heads, d) = q.dims3()?;
    let kv = k.dim(1)?;
    let g = heads / kv;
    let f32 = |t: &Tensor| t.to_dtype(DType::F32);
    // Query head kv·g + j sits at [kv, j·n + row] of the grouped layout.
    let qg = f32(q)?.reshape((n, kv, g, d))?.permute((1, 2, 0, 3))?.reshape((kv, g * n, d))?; // [kv, g·n, d]
    let kt = f32(k)?.permute((1, 2, 0))?.contiguous()?; // [kv, d, len]
    let scores = (qg.matmul(&kt)? * (1.0 / (d as f64).sqrt()))?; // [kv, g·n, len]
    let scores = match key_bias {
        Some(bias) => scores.broadcast_add(&f32(bias)?)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
    let vt = f32(v)?.transpose(0, 1)?.contiguous()?; // [kv, len, d]
    let context = probs.matmul(&vt)?; // [kv, g·n, d]
    context.reshape((kv, g, n, d))?.permute((2, 0, 1, 3))?.reshape((n, heads * d))?.to_dtype(q.dtype())
}
