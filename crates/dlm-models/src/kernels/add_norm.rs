//! Bias + dropout + residual + LayerNorm as one pass, with a one-pass backward: the
//! post-LN sublayer ending `LayerNorm(dropout(x·Wᵀ + b) + residual)` of BERT-family
//! encoders (attention output, feed-forward output), the embeddings' sum and LayerNorm,
//! and the MLM head's LayerNorm (no residual). Reads its inputs once in their dtype,
//! computes in f32, rounds once; the backward recomputes the normalised row instead of
//! storing it.
//!
//! ```text
//! s = (x + bias)·mask + residual        mask: DropMask factors, or 1
//! y = (s − mean(s))·rstd·γ + β          rstd = 1/sqrt(var(s) + eps)
//! backward, with x̂ = (s − mean)·rstd and dx̂ = dy·γ:
//! ds = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂));  dresidual = ds;  dx = ds·mask
//! dbias = Σrows dx;  dγ = Σrows dy·x̂;  dβ = Σrows dy
//! ```

use super::dropout::DropMask;
use super::vector::{self, BackendStorage, Elem};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

/// The op: `params` is `[3, hidden]` = (bias, γ, β).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddNorm {
    pub eps: f32,
    pub drop: Option<DropMask>,
}

impl AddNorm {
    /// `y = LayerNorm(drop(x + bias) + residual)`; `x`, `residual`: `[rows, h]` (any
    /// leading dims), `params`: `[3, h]`. Differentiable in all three.
    pub fn forward(&self, x: &Tensor, residual: Option<&Tensor>, params: &Tensor) -> Result<Tensor> {
        let (x, params) = (x.contiguous()?, params.contiguous()?);
        match residual {
            Some(r) => x.apply_op3(&r.contiguous()?, &params, *self),
            None => x.apply_op2(&params, *self),
        }
    }

    #[inline(always)]
    fn factor(&self, i: usize) -> f32 {
        self.drop.map_or(1.0, |d| d.factor(i))
    }

    /// Fills `s` with row `r`'s pre-norm sum and returns (mean, rstd).
    #[inline(always)]
    fn row_stats<E: Elem>(&self, r: usize, x: &[E], res: Option<&[E]>, bias: &[E], s: &mut [f32]) -> (f32, f32) {
        let h = s.len();
        let base = r * h;
        // The branch stays outside the loops: inside, the compiler hashed every element
        // and selected 1.0 afterwards (0.4% of an inference forward).
        match self.drop {
            Some(d) => (0..h).for_each(|j| s[j] = (x[j].get() + bias[j].get()) * d.factor(base + j)),
            None => (0..h).for_each(|j| s[j] = x[j].get() + bias[j].get()),
        }
        if let Some(res) = res {
            for j in 0..h {
                s[j] += res[j].get();
            }
        }
        let mean = vector::lane_sum(s, |v| v) / h as f32;
        let var = vector::lane_sum(s, |v| (v - mean) * (v - mean)) / h as f32;
        (mean, 1.0 / (var + self.eps).sqrt())
    }

    fn fwd<E: Elem>(&self, x: &[E], res: Option<&[E]>, params: &[E], h: usize) -> Vec<E> {
        let (bias, gamma, beta) = (&params[..h], &params[h..2 * h], &params[2 * h..]);
        let rows = vector::rows_per_task(x.len() / h.max(1), h);
        // SAFETY: every row of every chunk is written, all h columns.
        unsafe {
            vector::par_fill(x.len(), rows * h, |t, yc| {
                vector::vectorised(#[inline(always)] || {
                    let mut s = vec![0f32; h];
                    for (k, yr) in yc.chunks_mut(h).enumerate() {
                        let r = t * rows + k;
                        let xr = &x[r * h..(r + 1) * h];
                        let rr = res.map(|v| &v[r * h..(r + 1) * h]);
                        let (mean, rstd) = self.row_stats(r, xr, rr, bias, &mut s);
                        for j in 0..h {
                            yr[j].write(E::put((s[j] - mean) * rstd * gamma[j].get() + beta[j].get()));
                        }
                    }
                })
            })
        }
    }

    /// (dx, dresidual, dparams [3, h]).
    fn bwd<E: Elem>(&self, x: &[E], res: Option<&[E]>, params: &[E], dy: &[E], h: usize) -> (Vec<E>, Vec<E>, Vec<E>) {
        let (bias, gamma) = (&params[..h], &params[h..2 * h]);
        let n = x.len() / h.max(1);
        let mut dx = vec![E::ZERO; x.len()];
        let mut ds = vec![E::ZERO; if self.drop.is_some() { x.len() } else { 0 }];
        let rows = vector::rows_per_task(n, h);
        let ds_parts: Vec<Option<&mut [E]>> = if ds.is_empty() {
            (0..n.div_ceil(rows)).map(|_| None).collect()
        } else {
            ds.chunks_mut(rows * h).map(Some).collect()
        };
        let partials: Vec<Vec<f32>> = dx
            .par_chunks_mut(rows * h)
            .zip(ds_parts)
            .enumerate()
            .map(|(t, (dxc, mut dsc))| {
                vector::vectorised(#[inline(always)] || {
                    let mut sums = vec![0f32; 3 * h]; // dbias, dγ, dβ
                    let (mut s, mut dxh) = (vec![0f32; h], vec![0f32; h]);
                    for k in 0..dxc.len() / h {
                        let r = t * rows + k;
                        let rr = res.map(|v| &v[r * h..(r + 1) * h]);
                        let (mean, rstd) = self.row_stats(r, &x[r * h..(r + 1) * h], rr, bias, &mut s);
                        let g = &dy[r * h..(r + 1) * h];
                        for j in 0..h {
                            let xhat = (s[j] - mean) * rstd;
                            s[j] = xhat;
                            dxh[j] = g[j].get() * gamma[j].get();
                            sums[h + j] += g[j].get() * xhat;
                            sums[2 * h + j] += g[j].get();
                        }
                        let a = vector::lane_sum(&dxh, |v| v) / h as f32;
                        let b = vector::lane_sum2(&dxh, &s, |d, x| d * x) / h as f32;
                        let base = r * h;
                        for j in 0..h {
                            let dsj = rstd * (dxh[j] - a - s[j] * b);
                            let dxj = dsj * self.factor(base + j);
                            sums[j] += dxj;
                            dxc[k * h + j] = E::put(dxj);
                            if let Some(dsc) = dsc.as_deref_mut() {
                                dsc[k * h + j] = E::put(dsj);
                            }
                        }
                    }
                    sums
                })
            })
            .collect();
        let mut total = vec![0f32; 3 * h];
        for p in partials {
            for (t, v) in total.iter_mut().zip(p) {
                *t += v;
            }
        }
        let dparams = total.into_iter().map(E::put).collect();
        (dx, ds, dparams)
    }

    fn cpu<E: Elem>(&self, x: (&CpuStorage, &Layout), res: Option<(&CpuStorage, &Layout)>, p: (&CpuStorage, &Layout)) -> Result<CpuStorage> {
        let xs = vector::contiguous::<E>(x.0, x.1, "add-norm")?;
        let h = check(x.1.shape(), res.map(|r| r.1.shape()), p.1.shape())?;
        let rs = res.map(|(s, l)| vector::contiguous::<E>(s, l, "add-norm")).transpose()?;
        let ps = vector::contiguous::<E>(p.0, p.1, "add-norm")?;
        Ok(E::wrap(self.fwd(xs, rs, ps, h)))
    }

    fn grads<E: Elem>(&self, x: &Tensor, res: Option<&Tensor>, p: &Tensor, dy: &Tensor) -> Result<(Tensor, Option<Tensor>, Tensor)> {
        let h = check(x.shape(), res.map(|r| r.shape()), p.shape())?;
        let (dx, ds, dp) = vector::with_elems::<E, _>(x, "add-norm", |xs| {
            vector::with_elems::<E, _>(p, "add-norm", |ps| {
                vector::with_elems::<E, _>(dy, "add-norm", |gs| match res {
                    Some(r) => vector::with_elems::<E, _>(r, "add-norm", |rs| Ok(self.bwd(xs, Some(rs), ps, gs, h))),
                    None => Ok(self.bwd(xs, None, ps, gs, h)),
                })
            })
        })?;
        let dx = vector::tensor(dx, x.dims())?;
        let dres = match (res, ds.is_empty()) {
            (None, _) => None,
            (Some(_), true) => Some(dx.clone()), // no dropout: ds = dx
            (Some(_), false) => Some(vector::tensor(ds, x.dims())?),
        };
        Ok((dx, dres, vector::tensor(dp, &[3, h])?))
    }

    fn grads_any(&self, x: &Tensor, res: Option<&Tensor>, p: &Tensor, dy: &Tensor) -> Result<(Tensor, Option<Tensor>, Tensor)> {
        match x.dtype() {
            DType::F32 => self.grads::<f32>(x, res, p, dy),
            DType::BF16 => self.grads::<bf16>(x, res, p, dy),
            d => candle_core::bail!("add-norm: unsupported dtype {d:?}"),
        }
    }

    fn cpu_any(&self, x: (&CpuStorage, &Layout), res: Option<(&CpuStorage, &Layout)>, p: (&CpuStorage, &Layout)) -> Result<(CpuStorage, Shape)> {
        let out = match x.0 {
            CpuStorage::F32(_) => self.cpu::<f32>(x, res, p)?,
            CpuStorage::BF16(_) => self.cpu::<bf16>(x, res, p)?,
            s => candle_core::bail!("add-norm: unsupported dtype {:?}", s.dtype()),
        };
        Ok((out, x.1.shape().clone()))
    }
}

/// The hidden size, after checking `x` and `residual` are `[.., h]` alike and `params` `[3, h]`.
fn check(x: &Shape, res: Option<&Shape>, p: &Shape) -> Result<usize> {
    let h = x.dims().last().copied().unwrap_or(0);
    if p.dims() != [3, h] || res.is_some_and(|r| r != x) || h == 0 {
        candle_core::bail!("add-norm: shapes x {x:?}, residual {res:?}, params {p:?} (expected params [3, {h}])")
    }
    Ok(h)
}

impl CustomOp3 for AddNorm {
    fn name(&self) -> &'static str {
        "add-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        self.cpu_any((s1, l1), Some((s2, l2)), (s3, l3))
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, p: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dres, dp) = self.grads_any(x, Some(res), p, dy)?;
        Ok((Some(dx), dres, Some(dp)))
    }
}

impl CustomOp2 for AddNorm {
    fn name(&self) -> &'static str {
        "add-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.cpu_any((s1, l1), None, (s2, l2))
    }

    fn bwd(&self, x: &Tensor, p: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, _, dp) = self.grads_any(x, None, p, dy)?;
        Ok((Some(dx), Some(dp)))
    }
}
