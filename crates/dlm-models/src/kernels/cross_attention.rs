//! Attention of some positions' queries over a whole sequence's keys and values, the
//! step of a cached forward (`kv_cache::cross_attention`): `softmax(q·kᵀ/√d + bias)·v` per
//! head, in f32, one pass per (head, query) with no intermediate tensor. The composed
//! candle form of the same sum (grouped layout, `permute`/`contiguous` copies of the keys
//! and values, a batched matmul, candle's softmax, a second matmul) ran a dozen ops per
//! layer whose thread-pool barriers cost more than their arithmetic at a 32-position step.
//!
//! Keys and values stay in the cache's layout `[len, kv_heads, d]`; query head `h` reads
//! key/value head `h / (heads / kv_heads)` (Llama's `repeat_kv`). Heads run in parallel,
//! and a head's keys and values (160 KiB for 320 positions of 128 dims) stay in cache for
//! all its queries. Dot products and the weighted sum of values are 16-lane sums
//! (`vector::lane_sum2`); the softmax subtracts the row's max and sums in f32, as candle's
//! does: equal to the composed form up to the order of the f32 additions.

use super::vector::{self, lane_max, lane_sum2, vectorised};
use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

/// `q` [n, heads, d], `k`, `v` [len, kv_heads, d], `key_bias` [len] additive (any float
/// dtype, on the CPU) → context [n, heads·d] in `q`'s dtype, computed in f32.
pub(crate) fn cross_attention(q: &Tensor, k: &Tensor, v: &Tensor, key_bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, heads, d) = q.dims3()?;
    let (len, kv, dk) = k.dims3()?;
    if v.dims() != [len, kv, d] || dk != d || kv == 0 || heads % kv != 0 || key_bias.is_some_and(|b| b.dims() != [len]) {
        candle_core::bail!(
            "cross-attention: q {:?}, k {:?}, v {:?}, key bias {:?} do not fit (expected [n, heads, d], [len, kv, d] twice with kv dividing heads, [len])",
            q.dims(),
            k.dims(),
            v.dims(),
            key_bias.map(|b| b.dims())
        )
    }
    let f32 = |t: &Tensor| t.to_dtype(DType::F32)?.contiguous();
    let (qf, kf, vf) = (f32(q)?, f32(k)?, f32(v)?);
    let bias: Option<Vec<f32>> = key_bias.map(|b| b.to_dtype(DType::F32)?.to_vec1()).transpose()?;
    let scale = 1.0 / (d as f32).sqrt();
    let group = heads / kv;
    let per_head: Vec<Vec<f32>> = vector::with_elems::<f32, _>(&qf, "cross-attention", |qs| {
        vector::with_elems::<f32, _>(&kf, "cross-attention", |ks| {
            vector::with_elems::<f32, _>(&vf, "cross-attention", |vs| {
                Ok((0..heads)
                    .into_par_iter()
                    .map(|h| {
                        let g = h / group;
                        let mut scores = vec![0f32; len];
                        let mut out = vec![0f32; n * d]; // [n, d] of head h
                        for i in 0..n {
                            let query = &qs[(i * heads + h) * d..][..d];
                            let row = &mut out[i * d..][..d];
                            vectorised(
                                #[inline(always)]
                                || attend(query, ks, vs, (g, kv, d), bias.as_deref(), scale, &mut scores, row),
                            );
                        }
                        out
                    })
                    .collect())
            })
        })
    })?;
    // [heads][n, d] → [n, heads·d]
    let mut context = vec![0f32; n * heads * d];
    for (h, out) in per_head.iter().enumerate() {
        for i in 0..n {
            context[(i * heads + h) * d..][..d].copy_from_slice(&out[i * d..][..d]);
        }
    }
    Tensor::from_vec(context, (n, heads * d), q.device())?.to_dtype(q.dtype())
}

/// One query `q` [d] against key/value head `g` of `ks`, `vs` [len, kv, d]: writes
/// `softmax(q·k/√d + bias)·v` into `out` [d]; `scores` [len] is scratch.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend(q: &[f32], ks: &[f32], vs: &[f32], (g, kv, d): (usize, usize, usize), bias: Option<&[f32]>, scale: f32, scores: &mut [f32], out: &mut [f32]) {
    for (p, s) in scores.iter_mut().enumerate() {
        let key = &ks[(p * kv + g) * d..][..d];
        *s = lane_sum2(q, key, |a, b| a * b) * scale + bias.map_or(0.0, |b| b[p]);
    }
    let max = lane_max(scores, |x| x);
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = vector::exp(*s - max);
        sum += *s;
    }
    out.fill(0.0);
    for (p, &s) in scores.iter().enumerate() {
        let value = &vs[(p * kv + g) * d..][..d];
        let w = s / sum;
        for (o, &x) in out.iter_mut().zip(value) {
            *o += w * x;
        }
    }
}
