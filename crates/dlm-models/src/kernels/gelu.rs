//! Bias + exact-erf GELU as one vectorised pass, with its backward (the feed-forward
//! intermediate of BERT-family encoders and the MLM head's transform). The checkpoints
//! were trained with erf GELU, so there is no tanh approximation here.
//!
//! ```text
//! z = x + bias;  y = z·Φ(z),  Φ(z) = (1 + erf(z/√2))/2
//! dx = dy·(Φ(z) + z·φ(z)),  φ(z) = exp(−z²/2)/√(2π);  dbias = Σrows dx
//! ```

use super::vector::{self, BackendStorage, Elem, erf, exp};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π)
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

#[derive(Debug, Clone, Copy)]
pub(crate) struct BiasGelu;

impl BiasGelu {
    /// `gelu(x + bias)`; `x`: `[.., f]`, `bias`: `[f]`. Differentiable in both.
    pub fn forward(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op2(&bias.contiguous()?, BiasGelu)
    }
}

#[inline(always)]
fn cdf(z: f32) -> f32 {
    0.5 * (1.0 + erf(z * FRAC_1_SQRT_2))
}

/// `z · Φ(z)`, exact-erf GELU.
#[inline(always)]
pub(super) fn gelu(z: f32) -> f32 {
    z * cdf(z)
}

fn fwd<E: Elem>(x: &[E], bias: &[E]) -> Vec<E> {
    let f = bias.len();
    let rows = vector::rows_per_task(x.len() / f, f);
    // SAFETY: every row of every chunk is written, all f columns.
    unsafe {
        vector::par_fill(x.len(), rows * f, |c, yc| {
            let xc = &x[c * rows * f..];
            vector::vectorised(#[inline(always)] || {
                for (yr, xr) in yc.chunks_mut(f).zip(xc.chunks(f)) {
                    for j in 0..f {
                        yr[j].write(E::put(gelu(xr[j].get() + bias[j].get())));
                    }
                }
            })
        })
    }
}

/// (dx, dbias)
fn bwd<E: Elem>(x: &[E], bias: &[E], dy: &[E]) -> (Vec<E>, Vec<E>) {
    let f = bias.len();
    let mut dx = vec![E::ZERO; x.len()];
    let rows = vector::rows_per_task(x.len() / f, f);
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(rows * f)
        .zip(x.par_chunks(rows * f).zip(dy.par_chunks(rows * f)))
        .map(|(dc, (xc, gc))| {
            vector::vectorised(#[inline(always)] || {
                let mut db = vec![0f32; f];
                for ((dr, xr), gr) in dc.chunks_mut(f).zip(xc.chunks(f)).zip(gc.chunks(f)) {
                    for j in 0..f {
                        let z = xr[j].get() + bias[j].get();
                        let d = gr[j].get() * (cdf(z) + z * FRAC_1_SQRT_2PI * exp(-0.5 * z * z));
                        db[j] += d;
                        dr[j] = E::put(d);
                    }
                }
                db
            })
        })
        .collect();
    let mut db = vec![0f32; f];
    for p in partials {
        for (t, v) in db.iter_mut().zip(p) {
            *t += v;
        }
    }
    (dx, db.into_iter().map(E::put).collect())
}

fn check(x: &Shape, bias: &Shape) -> Result<()> {
    if bias.rank() != 1 || x.dims().last() != Some(&bias.dims()[0]) || bias.dims()[0] == 0 {
        candle_core::bail!("bias-gelu: shapes x {x:?} and bias {bias:?} do not match")
    }
    Ok(())
}

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        check(l1.shape(), l2.shape())?;
        let out = match s1 {
            CpuStorage::F32(_) => {
                f32::wrap(fwd(vector::contiguous::<f32>(s1, l1, "bias-gelu")?, vector::contiguous::<f32>(s2, l2, "bias-gelu")?))
            }
            CpuStorage::BF16(_) => {
                bf16::wrap(fwd(vector::contiguous::<bf16>(s1, l1, "bias-gelu")?, vector::contiguous::<bf16>(s2, l2, "bias-gelu")?))
            }
            s => candle_core::bail!("bias-gelu: unsupported dtype {:?}", s.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, bias: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        check(x.shape(), bias.shape())?;
        fn grads<E: Elem>(x: &Tensor, bias: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
            let (dx, db) = vector::with_elems::<E, _>(x, "bias-gelu", |xs| {
                vector::with_elems::<E, _>(bias, "bias-gelu", |bs| vector::with_elems::<E, _>(dy, "bias-gelu", |gs| Ok(bwd(xs, bs, gs))))
            })?;
            Ok((vector::tensor(dx, x.dims())?, vector::tensor(db, bias.dims())?))
        }
        let (dx, db) = match x.dtype() {
            DType::F32 => grads::<f32>(x, bias, dy)?,
            DType::BF16 => grads::<bf16>(x, bias, dy)?,
            d => candle_core::bail!("bias-gelu: unsupported dtype {d:?}"),
        };
        Ok((Some(dx), Some(db)))
    }
}
