//! Self-attention in one op per (sequence, head), straight from the fused Q/K/V product,
//! with its backward pass. `[batch, heads, L, L]` scores are never materialised: the
//! forward walks the keys in blocks of KB with an online softmax (running max and sum,
//! FlashAttention's recurrence); the backward recomputes one query row of probabilities
//! at a time.
//!
//! ```text
//! qkv: [b, s, 3h] = q | k | v, head n in columns n·d..(n+1)·d of each; bias: [b, 1, 1 or s, s]
//! p = softmax(scale·q·kᵀ + bias);  p̃ = p·mask (attention dropout);  out = p̃·v: [b, s, h]
//! backward: dp̃ = dout·vᵀ;  D = Σk p̃·dp̃ (= dout·out);  ds = p·(mask·dp̃ − D)
//!           dq = scale·ds·k;  dk = scale·dsᵀ·q;  dv = p̃ᵀ·dout
//! ```
//! The dropout mask is drawn at the index the `[b, heads, s, s]` probabilities would have,
//! so it equals the composed path's (`MaskedSoftmax` then two products). All sums are in
//! f32 whatever the storage dtype.

use super::dropout::DropMask;
use super::vector::{self, BackendStorage, Elem, exp};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

/// Keys per block of the online softmax.
const KB: usize = 128;

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

/// Head `head` of part `part` of sequence `n` as f32: `[s][d]`, and transposed `[d][s]`
/// when `transposed`.
#[inline(always)]
fn gather<E: Elem>(qkv: &[E], g: Geometry, (n, head, part): (usize, usize, usize), transposed: bool) -> Vec<f32> {
    let (s, d) = (g.s, g.d);
    let mut out = vec![0f32; s * d];
    let rows = qkv[g.at(n, part, head, 0)..].chunks(3 * g.h).take(s).map(|row| &row[..d]);
    if transposed {
        for (i, row) in rows.enumerate() {
            for (o, x) in out[i..].iter_mut().step_by(s).zip(row) {
                *o = x.get();
            }
        }
    } else {
        for (o, row) in out.chunks_exact_mut(d).zip(rows) {
            for (o, x) in o.iter_mut().zip(row) {
                *o = x.get();
            }
        }
    }
    out
}

/// `out[j] = Σt x[t]·yt[t][j0 + j]` for `yt`: `[d][s]` (one row against a block of keys).
#[inline(always)]
fn row_times(x: &[f32], yt: &[f32], s: usize, j0: usize, out: &mut [f32]) {
    out.fill(0.0);
    for (t, &xt) in x.iter().enumerate() {
        for (o, &y) in out.iter_mut().zip(&yt[t * s + j0..]) {
            *o += xt * y;
        }
    }
}

impl Attention {
    /// `qkv`: [b, s, 3h]; `bias`: [b, 1, 1 or s, s] → [b, s, h].
    pub fn forward(&self, qkv: &Tensor, bias: &Tensor) -> Result<Tensor> {
        qkv.contiguous()?.apply_op2(&bias.contiguous()?, *self)
    }

    #[inline(always)]
    fn factor(&self, i: usize) -> f32 {
        self.drop.map_or(1.0, |d| d.factor(i))
    }

    /// One (sequence, head): its `[s][d]` outputs.
    #[inline(always)]
    fn fwd_head<E: Elem>(&self, qkv: &[E], bias: &[E], g: Geometry, (n, head): (usize, usize)) -> Vec<f32> {
        let (s, d) = (g.s, g.d);
        let kt = gather(qkv, g, (n, head, 1), true); // [d][s]
        let v = gather(qkv, g, (n, head, 2), false); // [s][d]
        let mut out = vec![0f32; s * d];
        let (mut q, mut sc) = (vec![0f32; d], vec![0f32; KB.min(s)]);
        for (i, acc) in out.chunks_mut(d).enumerate() {
            for (x, y) in q.iter_mut().zip(&qkv[g.at(n, 0, head, i)..][..d]) {
                *x = y.get();
            }
            let (brow, base) = (g.bias_row(bias, n, i), g.prob_index(n, head, i));
            let (mut m, mut l) = (f32::NEG_INFINITY, 0f32);
            for j0 in (0..s).step_by(KB) {
                let sc = &mut sc[..KB.min(s - j0)];
                row_times(&q, &kt, s, j0, sc);
                for (x, b) in sc.iter_mut().zip(&brow[j0..]) {
                    *x = self.scale * *x + b.get();
                }
                let m_new = m.max(vector::lane_max(sc, |x| x));
                if m_new == f32::NEG_INFINITY {
                    continue; // every key so far masked with −∞: no weight yet
                }
                let alpha = if m == f32::NEG_INFINITY { 0.0 } else { exp(m - m_new) };
                for x in sc.iter_mut() {
                    *x = exp(*x - m_new);
                }
                l = l * alpha + vector::lane_sum(sc, |x| x);
                for a in acc.iter_mut() {
                    *a *= alpha;
                }
                for (j, &e) in sc.iter().enumerate() {
                    let p = e * self.factor(base + j0 + j);
                    for (a, &vt) in acc.iter_mut().zip(&v[(j0 + j) * d..(j0 + j + 1) * d]) {
                        *a += p * vt;
                    }
                }
                m = m_new;
            }
            let inv = 1.0 / l;
            for a in acc.iter_mut() {
                *a *= inv;
            }
        }
        out
    }

    /// One (sequence, head): its `[s][d]` gradients for q, k and v, side by side.
    #[inline(always)]
    fn bwd_head<E: Elem>(&self, qkv: &[E], bias: &[E], dout: &[E], g: Geometry, (n, head): (usize, usize)) -> Vec<f32> {
        let (s, d) = (g.s, g.d);
        let (kt, k) = (gather(qkv, g, (n, head, 1), true), gather(qkv, g, (n, head, 1), false));
        let vt = gather(qkv, g, (n, head, 2), true);
        let mut grads = vec![0f32; 3 * s * d]; // dq | dk | dv, each [s][d]
        let (dq, dkv) = grads.split_at_mut(s * d);
        let (dk, dv) = dkv.split_at_mut(s * d);
        let (mut q, mut go) = (vec![0f32; d], vec![0f32; d]);
        let (mut p, mut dp, mut f) = (vec![0f32; s], vec![0f32; s], vec![0f32; s]);
        for (i, dqi) in dq.chunks_mut(d).enumerate() {
            for t in 0..d {
                q[t] = qkv[g.at(n, 0, head, i) + t].get();
                go[t] = dout[(n * s + i) * g.h + head * d + t].get();
            }
            let (brow, base) = (g.bias_row(bias, n, i), g.prob_index(n, head, i));
            row_times(&q, &kt, s, 0, &mut p);
            for (x, b) in p.iter_mut().zip(brow) {
                *x = self.scale * *x + b.get();
            }
            let max = vector::lane_max(&p, |x| x);
            for x in p.iter_mut() {
                *x = exp(*x - max);
            }
            let inv = 1.0 / vector::lane_sum(&p, |x| x);
            for x in p.iter_mut() {
                *x *= inv;
            }
            row_times(&go, &vt, s, 0, &mut dp); // dp̃
            for j in 0..s {
                f[j] = self.factor(base + j);
                dp[j] *= f[j]; // mask·dp̃
            }
            let big_d = vector::lane_sum2(&p, &dp, |a, b| a * b);
            for j in 0..s {
                let (ds, pt) = (self.scale * p[j] * (dp[j] - big_d), p[j] * f[j]);
                let (kj, dkj, dvj) = (&k[j * d..(j + 1) * d], &mut dk[j * d..(j + 1) * d], &mut dv[j * d..(j + 1) * d]);
                for t in 0..d {
                    dqi[t] += ds * kj[t];
                    dkj[t] += ds * q[t];
                    dvj[t] += pt * go[t];
                }
            }
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
