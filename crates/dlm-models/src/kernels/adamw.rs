//! One AdamW update of one parameter as a single in-place pass over flat buffers: the
//! f32 state `[m; v; master?]` and the parameter itself (f32, or bf16 written from the f32
//! master), read with the gradient once, nothing allocated. The maths is dlm-train's
//! `optimizer` (fairseq's Adam with decoupled weight decay):
//!
//! ```text
//! m ← β1·m + (1−β1)·g      v ← β2·v + (1−β2)·g²
//! p ← p·decay − step_size · m / (sqrt(v) + ε)
//! ```

use super::vector::{self, BackendStorage, Elem};
use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout, Result, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// The scalars of one update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// `lr · sqrt(1 − β2^t) / (1 − β1^t)`
    pub step_size: f32,
    /// `1 − lr · weight_decay`
    pub decay: f32,
}

/// Updates `param` (any shape, f32 or bf16, contiguous) and `state` (`[2, n]` f32 = m, v
/// for an f32 parameter; `[3, n]` = m, v, master for a bf16 one) in place from `grad`
/// (the parameter's shape, any float dtype). CPU tensors only.
pub fn adamw_step(param: &Tensor, state: &Tensor, grad: &Tensor, step: AdamWStep) -> Result<()> {
    let n = param.elem_count();
    let rows = if param.dtype() == candle_core::DType::F32 { 2 } else { 3 };
    if state.dims() != [rows, n] || grad.elem_count() != n || state.dtype() != candle_core::DType::F32 {
        candle_core::bail!(
            "adamw: parameter {:?} {:?} needs f32 state [{rows}, {n}] and a gradient of {n} elements, found state {:?} {:?}, gradient {:?}",
            param.dtype(),
            param.dims(),
            state.dtype(),
            state.dims(),
            grad.dims()
        )
    }
    // f32 and bf16 gradients are read as they are (widening bf16 is exact); others become f32.
    let grad = match grad.dtype() {
        candle_core::DType::F32 | candle_core::DType::BF16 => grad.contiguous()?,
        _ => grad.to_dtype(candle_core::DType::F32)?.contiguous()?,
    };
    state.inplace_op1(&Outer { param, grad: &grad, step })
}

/// Holds the state's storage while the parameter's is updated (`Inner`).
struct Outer<'a> {
    param: &'a Tensor,
    grad: &'a Tensor,
    step: AdamWStep,
}

struct Inner<'a> {
    state: Mutex<&'a mut [f32]>,
    step: AdamWStep,
}

impl InplaceOp1 for Outer<'_> {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let CpuStorage::F32(all) = storage else { candle_core::bail!("adamw: state must be f32") };
        let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("adamw: strided state") };
        let inner = Inner { state: Mutex::new(&mut all[start..end]), step: self.step };
        self.param.inplace_op2(self.grad, &inner)
    }
}

impl InplaceOp2 for Inner<'_> {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn cpu_fwd(&self, p: &mut CpuStorage, pl: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
        let mut state = self.state.lock().map_err(|_| candle_core::Error::Msg("adamw: poisoned state".into()))?;
        let Some((start, end)) = pl.contiguous_offsets() else { candle_core::bail!("adamw: strided parameter") };
        fn with_grad<E: Elem>(p: &mut [E], state: &mut [f32], (g, gl): (&CpuStorage, &Layout), s: AdamWStep) -> Result<()> {
            match g {
                CpuStorage::BF16(_) => update(p, state, vector::contiguous::<half::bf16>(g, gl, "adamw")?, s),
                _ => update(p, state, vector::contiguous::<f32>(g, gl, "adamw")?, s),
            }
            Ok(())
        }
        match p {
            CpuStorage::F32(v) => with_grad(&mut v[start..end], &mut state, (g, gl), self.step),
            CpuStorage::BF16(v) => with_grad(&mut v[start..end], &mut state, (g, gl), self.step),
            s => candle_core::bail!("adamw: unsupported parameter dtype {:?}", s.dtype()),
        }
    }
}

/// `state` = m, v, then (for a non-f32 parameter) the f32 master; `g` f32 or bf16.
fn update<E: Elem, G: Elem>(p: &mut [E], state: &mut [f32], g: &[G], s: AdamWStep) {
    let n = p.len();
    let (m, rest) = state.split_at_mut(n);
    let (v, master) = rest.split_at_mut(n);
    const CHUNK: usize = 1 << 14;
    let master_chunks: Vec<Option<&mut [f32]>> =
        if master.is_empty() { (0..n.div_ceil(CHUNK)).map(|_| None).collect() } else { master.chunks_mut(CHUNK).map(Some).collect() };
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .zip(master_chunks)
        .for_each(|((((p, m), v), g), master)| {
            vector::vectorised(#[inline(always)] || match master {
                Some(master) => {
                    for i in 0..p.len() {
                        master[i] = step_one(master[i], &mut m[i], &mut v[i], g[i].get(), s);
                        p[i] = E::put(master[i]);
                    }
                }
                None => {
                    for i in 0..p.len() {
                        p[i] = E::put(step_one(p[i].get(), &mut m[i], &mut v[i], g[i].get(), s));
                    }
                }
            })
        });
}

#[inline(always)]
fn step_one(p: f32, m: &mut f32, v: &mut f32, g: f32, s: AdamWStep) -> f32 {
    *m = s.beta1 * *m + (1.0 - s.beta1) * g;
    *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
    p * s.decay - s.step_size * *m / (v.sqrt() + s.eps)
}
