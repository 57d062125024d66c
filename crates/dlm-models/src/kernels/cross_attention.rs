//! Attention of some positions' queries over a whole sequence's keys and values, the
//! step of a cached forward (`kv_cache::cross_attention`): `softmax(q·kᵀ/√d + bias)·v` per
//! head, in f32. The composed candle form of the same sum (grouped layout,
//! `permute`/`contiguous` copies of the keys and values, a batched matmul, candle's
//! softmax, a second matmul) ran a dozen ops per layer whose thread-pool barriers cost
//! more than their arithmetic at a 32-position step.
//!
//! Here each head is one task (heads in parallel): two f32 GEMMs on the calling thread
//! (`f32_gemm`, the kernel candle's matmul calls) over strided views of the tensors as
//! they are — keys and values in the cache's layout `[len, kv_heads, d]`, query head `h`
//! reading key/value head `h / (heads / kv_heads)` (Llama's `repeat_kv`), no copy — with
//! the scale, bias and softmax (max subtracted, sums in f32) applied to the `[n, len]`
//! scores in between: equal to the composed form up to the order of the f32 additions.

use super::f32_gemm::{Threads, View, new_product};
use super::vector::{self, lane_max, lane_sum, vectorised};
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
                        // Head h's queries [n, d], and key/value head g's keys as [d, len] and
                        // values as [len, d]: strided views of the tensors as they are.
                        let q = View { data: &qs[h * d..], rows: n, cols: d, rs: heads * d, cs: 1 };
                        let kt = View { data: &ks[g * d..], rows: len, cols: d, rs: kv * d, cs: 1 }.t();
                        let v = View { data: &vs[g * d..], rows: len, cols: d, rs: kv * d, cs: 1 };
                        let mut scores = new_product(q, kt, Threads::One); // [n, len]
                        for row in scores.chunks_mut(len) {
                            vectorised(#[inline(always)] || softmax(row, bias.as_deref(), scale));
                        }
                        new_product(View::rows(&scores, n, len), v, Threads::One) // [n, d]
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

/// `row` ← softmax(row · scale + bias) in place (max subtracted, sums in f32).
#[inline(always)]
fn softmax(row: &mut [f32], bias: Option<&[f32]>, scale: f32) {
    match bias {
        Some(b) => row.iter_mut().zip(b).for_each(|(s, &b)| *s = *s * scale + b),
        None => row.iter_mut().for_each(|s| *s *= scale),
    }
    let max = lane_max(row, |x| x);
    row.iter_mut().for_each(|s| *s = vector::exp(*s - max));
    let inv = 1.0 / lane_sum(row, |x| x);
    row.iter_mut().for_each(|s| *s *= inv);
}
