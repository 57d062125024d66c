//! Self-attention in one op per (sequence, head), straight from the fused Q/K/V product,
//! with its backward pass. `[batch, heads, L, L]` is never materialised: a task holds the
//! scores of one block of at most [`QB`] query rows against every key, `[QB, s]` f32, and
//! computes them, and everything multiplied by them, as f32 GEMMs on slices
//! ([`f32_gemm`]); only the softmax and the dropout are row loops.
//!
//! ```text
//! qkv: [b, s, 3h] = q | k | v, head n in columns n·d..(n+1)·d of each; bias: [b, 1, 1 or s, s]
//! p = softmax(scale·q·kᵀ + bias);  p̃ = p·mask (attention dropout);  out = p̃·v: [b, s, h]
//! backward: dp̃ = dout·vᵀ;  D = Σk p̃·dp̃ (= dout·out);  ds = p·(mask·dp̃ − D)
//!           dq = scale·ds·k;  dk = scale·dsᵀ·q;  dv = p̃ᵀ·dout
//! ```
//! The dropout mask is drawn at the index the `[b, heads, s, s]` probabilities would have,
//! so it equals the composed path's (`MaskedSoftmax` then two products). All sums are in
//! f32 whatever the storage dtype. A row whose keys are all masked with −∞ gives NaN, as
//! the composed softmax does.

use super::dropout::DropMask;
use super::f32_gemm::{Threads, View, product};
use super::vector::{self, BackendStorage, Elem, exp};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

/// Query rows per block: a block's scores are `[QB, s]` f32.
const QB: usize = 128;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Attention {
    pub heads: usize,
    pub scale: f32,
    pub drop: Option<DropMask>,
}

/// Sizes, and where a (sequence, head, row) lives in `qkv` and `bias`.
#[derive(Clone, Copy)]
struct Geometry {
    batch: usize,
    s: usize,
    h: usize,
    heads: usize,
    d: usize,
    bias_q: usize,
}

impl Geometry {
    fn new(qkv: &Shape, bias: &Shape, heads: usize) -> Result<Geometry> {
        let (x, m) = (qkv.dims(), bias.dims());
        let ok = x.len() == 3 && heads > 0 && x[2] % (3 * heads) == 0 && m.len() == 4 && m[0] == x[0] && m[1] == 1;
        if !ok || !(m[2] == 1 || m[2] == x[1]) || m[3] != x[1] {
            candle_core::bail!("attention: qkv {x:?} ({heads} heads) and bias {m:?} (expected [b, s, 3h] and [b, 1, 1 or s, s])")
        }
        let h = x[2] / 3;
        Ok(Geometry { batch: x[0], s: x[1], h, heads, d: h / heads, bias_q: m[2] })
    }

    /// Offset in `qkv` of row `i` of sequence `n`, head `head`, part 0 (q), 1 (k) or 2 (v).
    #[inline(always)]
    fn at(&self, n: usize, part: usize, head: usize, i: usize) -> usize {
        (n * self.s + i) * 3 * self.h + part * self.h + head * self.d
    }

    #[inline(always)]
    fn bias_row<'a, E>(&self, bias: &'a [E], n: usize, i: usize) -> &'a [E] {
        let row = n * self.bias_q + if self.bias_q == 1 { 0 } else { i };
        &bias[row * self.s..(row + 1) * self.s]
    }

    /// Index of probability `(n, head, i, 0)` in `[b, heads, s, s]` (the dropout counter).
    #[inline(always)]
    fn prob_index(&self, n: usize, head: usize, i: usize) -> usize {
        ((n * self.heads + head) * self.s + i) * self.s
    }
}

/// Head `head` of sequence `n` as f32 `[s][d]`: of part `part` of `qkv` (row stride
/// `3h`), or of a `[b, s, h]` tensor when `part` is `None`.
#[inline(always)]
fn gather<E: Elem>(x: &[E], g: Geometry, (n, head, part): (usize, usize, Option<usize>)) -> Vec<f32> {
    let (start, stride) = match part {
        Some(part) => (g.at(n, part, head, 0), 3 * g.h),
        None => ((n * g.s) * g.h + head * g.d, g.h),
    };
    let mut out = vec![0f32; g.s * g.d];
    for (o, row) in out.chunks_exact_mut(g.d).zip(x[start..].chunks(stride)) {
        for (o, x) in o.iter_mut().zip(&row[..g.d]) {
            *o = x.get();
        }
    }
    out
}

impl Attention {
    /// `qkv`: [b, s, 3h]; `bias`: [b, 1, 1 or s, s] → [b, s, h].
    pub fn forward(&self, qkv: &Tensor, bias: &Tensor) -> Result<Tensor> {
        qkv.contiguous()?.apply_op2(&bias.contiguous()?, *self)
    }

    /// The dropout factors of the `f.len()` probabilities from index `base` on (all 1
    /// without dropout).
    #[inline(always)]
    fn factors(&self, base: usize, f: &mut [f32]) {
        match self.drop {
            Some(drop) => f.iter_mut().enumerate().for_each(|(j, x)| *x = drop.factor(base + j)),
            None => f.fill(1.0),
        }
    }

    /// One row of scores `q·kᵀ` → `exp(scale·x + b − max)` in place, `b` from `brow`
    /// (the row's additive mask); returns the row's `Σ exp`.
    #[inline(always)]
    fn exp_row<E: Elem>(&self, row: &mut [f32], brow: &[E]) -> f32 {
        for (x, b) in row.iter_mut().zip(brow) {
            *x = self.scale * *x + b.get();
        }
        let max = vector::lane_max(row, |x| x);
        for x in row.iter_mut() {
            *x = exp(*x - max);
        }
        vector::lane_sum(row, |x| x)
    }

    /// One (sequence, head): its `[s][d]` outputs.
    #[inline(always)]
    fn fwd_head<E: Elem>(&self, qkv: &[E], bias: &[E], g: Geometry, (n, head): (usize, usize)) -> Vec<f32> {
        let (s, d) = (g.s, g.d);
        let (q, k, v) = (gather(qkv, g, (n, head, Some(0))), gather(qkv, g, (n, head, Some(1))), gather(qkv, g, (n, head, Some(2))));
        let mut out = vec![0f32; s * d];
        let (mut scores, mut f, mut inv) = (vec![0f32; QB.min(s) * s], vec![0f32; s], vec![0f32; QB.min(s)]);
        for i0 in (0..s).step_by(QB) {
            let qb = QB.min(s - i0);
            let p = &mut scores[..qb * s]; // [qb, s]
            product(p, s, View::rows(&q[i0 * d..(i0 + qb) * d], qb, d), View::rows(&k, s, d).t(), false, Threads::One);
            for (r, row) in p.chunks_exact_mut(s).enumerate() {
                inv[r] = 1.0 / self.exp_row(row, g.bias_row(bias, n, i0 + r));
                self.factors(g.prob_index(n, head, i0 + r), &mut f);
                for (x, f) in row.iter_mut().zip(&f) {
                    *x *= f;
                }
            }
            let o = &mut out[i0 * d..(i0 + qb) * d]; // [qb, d] = p̃·v, then / Σ exp
            product(o, d, View::rows(p, qb, s), View::rows(&v, s, d), false, Threads::One);
            for (row, inv) in o.chunks_exact_mut(d).zip(&inv) {
                for x in row.iter_mut() {
                    *x *= inv;
                }
            }
        }
        out
    }

    /// One (sequence, head): its `[s][d]` gradients for q, k and v, side by side.
    #[inline(always)]
    fn bwd_head<E: Elem>(&self, qkv: &[E], bias: &[E], dout: &[E], g: Geometry, (n, head): (usize, usize)) -> Vec<f32> {
        let (s, d) = (g.s, g.d);
        let (q, k, v) = (gather(qkv, g, (n, head, Some(0))), gather(qkv, g, (n, head, Some(1))), gather(qkv, g, (n, head, Some(2))));
        let go = gather(dout, g, (n, head, None));
        let mut grads = vec![0f32; 3 * s * d]; // dq | dk | dv, each [s][d]
        let (dq, dkv) = grads.split_at_mut(s * d);
        let (dk, dv) = dkv.split_at_mut(s * d);
        let (mut scores, mut dscores, mut f) = (vec![0f32; QB.min(s) * s], vec![0f32; QB.min(s) * s], vec![0f32; s]);
        for i0 in (0..s).step_by(QB) {
            let qb = QB.min(s - i0);
            let (p, dp) = (&mut scores[..qb * s], &mut dscores[..qb * s]); // [qb, s] each
            let (qi, goi) = (View::rows(&q[i0 * d..(i0 + qb) * d], qb, d), View::rows(&go[i0 * d..(i0 + qb) * d], qb, d));
            product(p, s, qi, View::rows(&k, s, d).t(), false, Threads::One);
            product(dp, s, goi, View::rows(&v, s, d).t(), false, Threads::One); // dp̃
            for (r, (row, drow)) in p.chunks_exact_mut(s).zip(dp.chunks_exact_mut(s)).enumerate() {
                let inv = 1.0 / self.exp_row(row, g.bias_row(bias, n, i0 + r));
                for x in row.iter_mut() {
                    *x *= inv;
                }
                self.factors(g.prob_index(n, head, i0 + r), &mut f);
                for (x, f) in drow.iter_mut().zip(&f) {
                    *x *= f; // mask·dp̃
                }
                let big_d = vector::lane_sum2(row, drow, |a, b| a * b);
                for ((x, dx), f) in row.iter_mut().zip(drow.iter_mut()).zip(&f) {
                    *dx = self.scale * *x * (*dx - big_d); // ds
                    *x *= f; // p̃
                }
            }
            product(dv, d, View::rows(p, qb, s).t(), goi, true, Threads::One); // += p̃ᵀ·dout
            product(&mut dq[i0 * d..(i0 + qb) * d], d, View::rows(dp, qb, s), View::rows(&k, s, d), false, Threads::One);
            product(dk, d, View::rows(dp, qb, s).t(), qi, true, Threads::One); // += dsᵀ·q
        }
        grads
    }

    fn fwd<E: Elem>(&self, qkv: &[E], bias: &[E], g: Geometry) -> Vec<E> {
        let heads: Vec<Vec<f32>> = (0..g.batch * g.heads)
            .into_par_iter()
            .map(|t| vector::vectorised(#[inline(always)] || self.fwd_head(qkv, bias, g, (t / g.heads, t % g.heads))))
            .collect();
        let mut out = vec![E::ZERO; g.batch * g.s * g.h];
        for (t, head) in heads.iter().enumerate() {
            let (n, hd) = (t / g.heads, t % g.heads);
            for (i, row) in head.chunks(g.d).enumerate() {
                let o = &mut out[(n * g.s + i) * g.h + hd * g.d..][..g.d];
                for (o, &x) in o.iter_mut().zip(row) {
                    *o = E::put(x);
                }
            }
        }
        out
    }

    fn bwd<E: Elem>(&self, qkv: &[E], bias: &[E], dout: &[E], g: Geometry) -> Vec<E> {
        let heads: Vec<Vec<f32>> = (0..g.batch * g.heads)
            .into_par_iter()
            .map(|t| vector::vectorised(#[inline(always)] || self.bwd_head(qkv, bias, dout, g, (t / g.heads, t % g.heads))))
            .collect();
        let mut dqkv = vec![E::ZERO; qkv.len()];
        for (t, grads) in heads.iter().enumerate() {
            let (n, hd) = (t / g.heads, t % g.heads);
            for (part, grad) in grads.chunks(g.s * g.d).enumerate() {
                for (i, row) in grad.chunks(g.d).enumerate() {
                    let o = &mut dqkv[g.at(n, part, hd, i)..][..g.d];
                    for (o, &x) in o.iter_mut().zip(row) {
                        *o = E::put(x);
                    }
                }
            }
        }
        dqkv
    }
}

impl CustomOp2 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(l1.shape(), l2.shape(), self.heads)?;
        let op = "attention";
        let out = match s1 {
            CpuStorage::F32(_) => f32::wrap(self.fwd(vector::contiguous::<f32>(s1, l1, op)?, vector::contiguous::<f32>(s2, l2, op)?, g)),
            CpuStorage::BF16(_) => bf16::wrap(self.fwd(vector::contiguous::<bf16>(s1, l1, op)?, vector::contiguous::<bf16>(s2, l2, op)?, g)),
            s => candle_core::bail!("{op}: unsupported dtype {:?}", s.dtype()),
        };
        Ok((out, Shape::from((g.batch, g.s, g.h))))
    }

    fn bwd(&self, qkv: &Tensor, bias: &Tensor, _out: &Tensor, dout: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = Geometry::new(qkv.shape(), bias.shape(), self.heads)?;
        fn grads<E: Elem>(op: &Attention, qkv: &Tensor, bias: &Tensor, dout: &Tensor, g: Geometry) -> Result<Tensor> {
            let name = "attention";
            let d = vector::with_elems::<E, _>(qkv, name, |x| {
                vector::with_elems::<E, _>(bias, name, |b| vector::with_elems::<E, _>(dout, name, |o| Ok(op.bwd(x, b, o, g))))
            })?;
            vector::tensor(d, qkv.dims())
        }
        let dqkv = match qkv.dtype() {
            DType::F32 => grads::<f32>(self, qkv, bias, dout, g)?,
            DType::BF16 => grads::<bf16>(self, qkv, bias, dout, g)?,
            d => candle_core::bail!("attention: unsupported dtype {d:?}"),
        };
        // The mask is a constant: no gradient.
        Ok((Some(dqkv), None))
    }
}
