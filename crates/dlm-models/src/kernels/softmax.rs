//! Attention probabilities in one pass: scale, additive mask, softmax over the keys and
//! attention dropout, with a backward that recomputes the probabilities from the scores
//! rather than storing them before dropout.
//!
//! ```text
//! p = softmax(scale·scores + bias)   over the last dim;  y = p·mask
//! backward: dp = dy·mask;  dscores = scale·p·(dp − Σk dp·p)
//! ```
//! `scores`: `[batch, heads, q, k]`; `bias`: `[batch, 1, 1 or q, k]` (padding, causal).

use super::dropout::DropMask;
use super::vector::{self, BackendStorage, Elem, exp};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy)]
pub(crate) struct MaskedSoftmax {
    pub scale: f32,
    pub drop: Option<DropMask>,
}

/// Where a row's bias lives: rows are (batch, head, query) in order.
#[derive(Clone, Copy)]
struct Geometry {
    heads_q: usize,
    q: usize,
    bias_q: usize,
    k: usize,
}

impl Geometry {
    fn new(scores: &Shape, bias: &Shape) -> Result<Geometry> {
        let (s, b) = (scores.dims(), bias.dims());
        let ok = s.len() == 4 && b.len() == 4 && b[0] == s[0] && b[1] == 1 && (b[2] == 1 || b[2] == s[2]) && b[3] == s[3];
        if !ok || s[3] == 0 {
            candle_core::bail!("masked-softmax: scores {s:?} and bias {b:?} (expected [b, 1, 1 or q, k])")
        }
        Ok(Geometry { heads_q: s[1] * s[2], q: s[2], bias_q: b[2], k: s[3] })
    }

    #[inline(always)]
    fn bias_row<'a, E>(&self, bias: &'a [E], r: usize) -> &'a [E] {
        let (batch, query) = (r / self.heads_q, r % self.q);
        let row = batch * self.bias_q + if self.bias_q == 1 { 0 } else { query };
        &bias[row * self.k..(row + 1) * self.k]
    }
}

impl MaskedSoftmax {
    pub fn forward(&self, scores: &Tensor, bias: &Tensor) -> Result<Tensor> {
        scores.contiguous()?.apply_op2(&bias.contiguous()?, *self)
    }

    /// Fills `p` with row `r`'s probabilities.
    #[inline(always)]
    fn probs<E: Elem>(&self, scores: &[E], bias: &[E], p: &mut [f32]) {
        for j in 0..p.len() {
            p[j] = self.scale * scores[j].get() + bias[j].get();
        }
        let max = vector::lane_max(p, |v| v);
        for v in p.iter_mut() {
            *v = exp(*v - max);
        }
        let inv = 1.0 / vector::lane_sum(p, |v| v);
        for v in p.iter_mut() {
            *v *= inv;
        }
    }

    #[inline(always)]
    fn factor(&self, i: usize) -> f32 {
        self.drop.map_or(1.0, |d| d.factor(i))
    }

    fn fwd<E: Elem>(&self, scores: &[E], bias: &[E], g: Geometry) -> Vec<E> {
        let k = g.k;
        let mut y = vec![E::ZERO; scores.len()];
        let rows = vector::rows_per_task(scores.len() / k, k);
        y.par_chunks_mut(rows * k).enumerate().for_each(|(t, yc)| {
            vector::vectorised(#[inline(always)] || {
                let mut p = vec![0f32; k];
                for (i, yr) in yc.chunks_mut(k).enumerate() {
                    let r = t * rows + i;
                    self.probs(&scores[r * k..(r + 1) * k], g.bias_row(bias, r), &mut p);
                    for j in 0..k {
                        yr[j] = E::put(p[j] * self.factor(r * k + j));
                    }
                }
            })
        });
        y
    }

    fn bwd<E: Elem>(&self, scores: &[E], bias: &[E], dy: &[E], g: Geometry) -> Vec<E> {
        let k = g.k;
        let mut ds = vec![E::ZERO; scores.len()];
        let rows = vector::rows_per_task(scores.len() / k, k);
        ds.par_chunks_mut(rows * k).enumerate().for_each(|(t, dc)| {
            vector::vectorised(#[inline(always)] || {
                let (mut p, mut dp) = (vec![0f32; k], vec![0f32; k]);
                for (i, dr) in dc.chunks_mut(k).enumerate() {
                    let r = t * rows + i;
                    self.probs(&scores[r * k..(r + 1) * k], g.bias_row(bias, r), &mut p);
                    for j in 0..k {
                        dp[j] = dy[r * k + j].get() * self.factor(r * k + j);
                    }
                    let dot = vector::lane_sum2(&dp, &p, |a, b| a * b);
                    for j in 0..k {
                        dr[j] = E::put(self.scale * p[j] * (dp[j] - dot));
                    }
                }
            })
        });
        ds
    }
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(l1.shape(), l2.shape())?;
        let op = "masked-softmax";
        let out = match s1 {
            CpuStorage::F32(_) => f32::wrap(self.fwd(vector::contiguous::<f32>(s1, l1, op)?, vector::contiguous::<f32>(s2, l2, op)?, g)),
            CpuStorage::BF16(_) => bf16::wrap(self.fwd(vector::contiguous::<bf16>(s1, l1, op)?, vector::contiguous::<bf16>(s2, l2, op)?, g)),
            s => candle_core::bail!("{op}: unsupported dtype {:?}", s.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(&self, scores: &Tensor, bias: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = Geometry::new(scores.shape(), bias.shape())?;
        fn grads<E: Elem>(op: &MaskedSoftmax, scores: &Tensor, bias: &Tensor, dy: &Tensor, g: Geometry) -> Result<Tensor> {
            let name = "masked-softmax";
            let ds = vector::with_elems::<E, _>(scores, name, |s| {
                vector::with_elems::<E, _>(bias, name, |b| vector::with_elems::<E, _>(dy, name, |d| Ok(op.bwd(s, b, d, g))))
            })?;
            vector::tensor(ds, scores.dims())
        }
        let ds = match scores.dtype() {
            DType::F32 => grads::<f32>(self, scores, bias, dy, g)?,
            DType::BF16 => grads::<bf16>(self, scores, bias, dy, g)?,
            d => candle_core::bail!("masked-softmax: unsupported dtype {d:?}"),
        };
        // The mask is a constant: no gradient.
        Ok((Some(ds), None))
    }
}
