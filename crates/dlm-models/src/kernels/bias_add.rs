//! `x + bias` over the last dimension in one vectorised pass, with its backward
//! (`dx = dy`, `dbias = Σrows dy`): the bias of the fused Q/K/V product and of the
//! vocabulary decoder, whose candle broadcast forms convert bf16 element by element.

use super::vector::{self, BackendStorage, Elem};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy)]
pub(crate) struct BiasAdd;

impl BiasAdd {
    /// `x`: `[.., n]`, `bias`: `[n]`.
    pub fn forward(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op2(&bias.contiguous()?, BiasAdd)
    }
}

fn fwd<E: Elem>(x: &[E], bias: &[E]) -> Vec<E> {
    let n = bias.len();
    let rows = vector::rows_per_task(x.len() / n, n);
    // SAFETY: every row of every chunk is written, all n columns.
    unsafe {
        vector::par_fill(x.len(), rows * n, |c, yc| {
            let xc = &x[c * rows * n..];
            vector::vectorised(#[inline(always)] || {
                for (yr, xr) in yc.chunks_mut(n).zip(xc.chunks(n)) {
                    for j in 0..n {
                        yr[j].write(E::put(xr[j].get() + bias[j].get()));
                    }
                }
            })
        })
    }
}

/// Σrows dy, in f32.
pub(super) fn bias_grad<E: Elem>(dy: &[E], n: usize) -> Vec<E> {
    let rows = vector::rows_per_task(dy.len() / n, n);
    let partials: Vec<Vec<f32>> = dy
        .par_chunks(rows * n)
        .map(|c| {
            vector::vectorised(#[inline(always)] || {
                let mut s = vec![0f32; n];
                for r in c.chunks(n) {
                    for j in 0..n {
                        s[j] += r[j].get();
                    }
                }
                s
            })
        })
        .collect();
    let mut total = vec![0f32; n];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total.into_iter().map(E::put).collect()
}

fn check(x: &Shape, bias: &Shape) -> Result<usize> {
    match (x.dims().last(), bias.dims()) {
        (Some(&n), &[m]) if n == m && n > 0 => Ok(n),
        _ => candle_core::bail!("bias-add: shapes x {x:?} and bias {bias:?} do not match"),
    }
}

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "bias-add"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        check(l1.shape(), l2.shape())?;
        let out = match s1 {
            CpuStorage::F32(_) => f32::wrap(fwd(vector::contiguous::<f32>(s1, l1, "bias-add")?, vector::contiguous::<f32>(s2, l2, "bias-add")?)),
            CpuStorage::BF16(_) => bf16::wrap(fwd(vector::contiguous::<bf16>(s1, l1, "bias-add")?, vector::contiguous::<bf16>(s2, l2, "bias-add")?)),
            s => candle_core::bail!("bias-add: unsupported dtype {:?}", s.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, bias: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = check(x.shape(), bias.shape())?;
        let db = match dy.dtype() {
            DType::F32 => vector::tensor(vector::with_elems::<f32, _>(dy, "bias-add", |g| Ok(bias_grad(g, n)))?, &[n])?,
            DType::BF16 => vector::tensor(vector::with_elems::<bf16, _>(dy, "bias-add", |g| Ok(bias_grad(g, n)))?, &[n])?,
            d => candle_core::bail!("bias-add: unsupported dtype {d:?}"),
        };
        Ok((Some(dy.clone()), Some(db)))
    }
}
