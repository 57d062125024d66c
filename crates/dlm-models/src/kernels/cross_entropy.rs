//! Cross-entropy over the vocabulary in one pass per row (SPEC §3's per-token terms),
//! reading the logits in their own dtype, never materialising `log_softmax` in f32:
//!
//! ```text
//! lse = max + ln Σv exp(logit_v − max)
//! ce  = lse − logit_target              (−log p(target))
//! ent = lse − mean_v logit_v            (−mean_v log p(v), label smoothing's term)
//! backward: dlogit_v = (dce + dent)·p_v − dce·[v = target] − dent/V
//! ```
//! The output is `[rows, 3]` f32: `ce`, `ent` and the argmax (as f32, exact below 2²⁴).

use super::vector::{self, BackendStorage, Elem, exp};
use candle_core::{CpuStorage, CustomOp2, D, DType, Layout, Result, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

struct CrossEntropy;

/// `logits` `[rows, V]`, `targets` `[rows]` u32 → `[rows, 3]` f32 (ce, ent, argmax);
/// differentiable in the logits.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if logits.device().is_cpu() && matches!(logits.dtype(), DType::F32 | DType::BF16) && super::fused_enabled() {
        return logits.contiguous()?.apply_op2(&targets.contiguous()?, CrossEntropy);
    }
    let logp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let ce = logp.gather(&targets.unsqueeze(1)?, 1)?.neg()?; // [rows, 1]
    let ent = logp.mean_keepdim(D::Minus1)?.neg()?;
    let arg = logits.argmax_keepdim(D::Minus1)?.to_dtype(DType::F32)?;
    Tensor::cat(&[ce, ent, arg], 1)
}

/// (lse, mean logit, argmax) of a row; the first maximum wins ties, as candle's argmax.
#[inline(always)]
fn row_stats<E: Elem>(row: &[E]) -> (f32, f32, usize) {
    let max = vector::lane_max(row, |v| v.get());
    let arg = row.iter().position(|v| v.get() == max).unwrap_or(0);
    let sum = vector::lane_sum(row, |v| v.get());
    let lse = max + vector::lane_sum(row, |v| exp(v.get() - max)).ln();
    (lse, sum / row.len() as f32, arg)
}

fn fwd<E: Elem>(logits: &[E], targets: &[u32], v: usize) -> Result<Vec<f32>> {
    if let Some(&t) = targets.iter().find(|&&t| t as usize >= v) {
        candle_core::bail!("cross-entropy: target {t} is outside the vocabulary of {v}")
    }
    let mut out = vec![0f32; 3 * targets.len()];
    out.par_chunks_mut(3).zip(logits.par_chunks(v)).zip(targets.par_iter()).for_each(|((o, row), &t)| {
        vector::vectorised(#[inline(always)] || {
            let (lse, mean, arg) = row_stats(row);
            o[0] = lse - row[t as usize].get();
            o[1] = lse - mean;
            o[2] = arg as f32;
        })
    });
    Ok(out)
}

fn bwd<E: Elem>(logits: &[E], targets: &[u32], grad: &[f32], v: usize) -> Vec<E> {
    let mut d = vec![E::ZERO; logits.len()];
    d.par_chunks_mut(v).zip(logits.par_chunks(v)).enumerate().for_each(|(r, (dr, row))| {
        vector::vectorised(#[inline(always)] || {
            let (gce, gent) = (grad[3 * r], grad[3 * r + 1]);
            let (lse, _, _) = row_stats(row);
            let (g, shift) = (gce + gent, gent / v as f32);
            for (dv, x) in dr.iter_mut().zip(row) {
                *dv = E::put(g * exp(x.get() - lse) - shift);
            }
            let t = targets[r] as usize;
            dr[t] = E::put(dr[t].get() - gce);
        })
    });
    d
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (rows, v) = l1.shape().dims2()?;
        if l2.shape().dims() != [rows] {
            candle_core::bail!("cross-entropy: logits {:?} but targets {:?}", l1.shape(), l2.shape())
        }
        let CpuStorage::U32(t) = s2 else { candle_core::bail!("cross-entropy: targets must be u32") };
        let Some((t0, t1)) = l2.contiguous_offsets() else { candle_core::bail!("cross-entropy: strided targets") };
        let targets = &t[t0..t1];
        let out = match s1 {
            CpuStorage::F32(_) => fwd(vector::contiguous::<f32>(s1, l1, "cross-entropy")?, targets, v)?,
            CpuStorage::BF16(_) => fwd(vector::contiguous::<bf16>(s1, l1, "cross-entropy")?, targets, v)?,
            s => candle_core::bail!("cross-entropy: unsupported dtype {:?}", s.dtype()),
        };
        Ok((CpuStorage::F32(out), Shape::from((rows, 3))))
    }

    fn bwd(&self, logits: &Tensor, targets: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let v = logits.dim(1)?;
        let targets = targets.to_vec1::<u32>()?;
        let grad = grad.to_dtype(DType::F32)?;
        fn go<E: Elem>(logits: &Tensor, t: &[u32], grad: &Tensor, v: usize) -> Result<Tensor> {
            let d = vector::with_elems::<E, _>(logits, "cross-entropy", |l| {
                vector::with_elems::<f32, _>(grad, "cross-entropy", |g| Ok(bwd(l, t, g, v)))
            })?;
            vector::tensor(d, logits.dims())
        }
        let d = match logits.dtype() {
            DType::F32 => go::<f32>(logits, &targets, &grad, v)?,
            DType::BF16 => go::<bf16>(logits, &targets, &grad, v)?,
            d => candle_core::bail!("cross-entropy: unsupported dtype {d:?}"),
        };
        Ok((Some(d), None))
    }
}
