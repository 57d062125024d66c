//! `silu(gate) · up` of a frozen Llama-family MLP (LLaDA, Dream) from its fused Gate/Up
//! product `[.., 2f]` (gate first, then up) → `[.., f]`, in one parallel pass, for
//! inference (no backward). Candle's composed form (two `narrow` views, `silu` over the
//! strided gate, `mul`) wrote the activation once more than needed and went through two
//! maps: at a full LLaDA-bench forward's 320 rows × 2816 it took 2.25–2.49 ms, this pass
//! 1.07–1.24 ms (2 threads, a loop of 20 calls on the Intel Xeon VM of docs/caching.md,
//! load not printed; at 32 rows both about 0.21 ms: libm's `expf` sets the pace there).
//!
//! Each element is computed as candle computes it, `g / (1 + exp(−g)) · u`: in f32 with
//! the same `f32::exp`, in bf16 with every operation rounded to bf16 as `half` rounds it
//! (the exponential taken in f32 and rounded, as `half`'s `exp` does). So the result is
//! bitwise the composed one (tested), whatever the thread count.

use super::vector::{self, BackendStorage, Elem};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use half::bf16;

#[derive(Debug, Clone, Copy)]
pub(crate) struct SwiGlu;

impl SwiGlu {
    /// Whether [`SwiGlu::forward`] runs for `both`: an f32 or bf16 CPU tensor, fused
    /// kernels on.
    pub fn applies(both: &Tensor) -> bool {
        matches!(both.dtype(), DType::F32 | DType::BF16) && both.device().is_cpu() && super::fused_enabled()
    }

    /// `both`: `[.., 2f]`, gate then up → `silu(gate) · up` `[.., f]`.
    pub fn forward(both: &Tensor) -> Result<Tensor> {
        both.contiguous()?.apply_op1(SwiGlu)
    }
}

/// candle's f32 `silu(g) · u`.
#[inline(always)]
fn f32_act(g: f32, u: f32) -> f32 {
    g / (1.0 + (-g).exp()) * u
}

/// candle's bf16 `silu(g) · u`, each operation rounded to bf16.
#[inline(always)]
fn bf16_act(g: bf16, u: bf16) -> bf16 {
    let e = bf16::from_f32((-g).to_f32().exp());
    g / (bf16::ONE + e) * u
}

/// `both` `[rows, 2f]` → `[rows, f]`, rows in parallel.
fn fwd<E: Elem>(both: &[E], f: usize, act: impl Fn(E, E) -> E + Sync) -> Vec<E> {
    let rows = both.len() / (2 * f);
    let per_task = vector::rows_per_task(rows, f);
    // SAFETY: every chunk's rows are written whole, all f columns.
    unsafe {
        vector::par_fill(rows * f, per_task * f, |c, yc| {
            let bc = &both[c * per_task * 2 * f..];
            for (yr, br) in yc.chunks_mut(f).zip(bc.chunks(2 * f)) {
                for j in 0..f {
                    yr[j].write(act(br[j], br[f + j]));
                }
            }
        })
    }
}

impl CustomOp1 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l.shape().dims();
        let width = dims.last().copied().unwrap_or(0);
        if width == 0 || width % 2 != 0 {
            candle_core::bail!("swiglu: expected [.., 2f] with f ≥ 1 (gate then up), found {dims:?}")
        }
        let f = width / 2;
        let out = match s {
            CpuStorage::F32(_) => f32::wrap(fwd(vector::contiguous::<f32>(s, l, "swiglu")?, f, f32_act)),
            CpuStorage::BF16(_) => bf16::wrap(fwd(vector::contiguous::<bf16>(s, l, "swiglu")?, f, bf16_act)),
            s => candle_core::bail!("swiglu: unsupported dtype {:?}", s.dtype()),
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("width checked") = f;
        Ok((out, Shape::from(out_dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device};

    /// Bitwise the composed candle form (`silu` of the gate half times the up half), in
    /// f32 and bf16, one row and many (several tasks), with values where `exp(−g)`
    /// overflows and underflows; a wrong shape is an error naming it.
    #[test]
    fn equals_the_composed_form_bitwise() {
        for (rows, f) in [(1, 5), (3, 64), (70, 300)] {
            let v: Vec<f32> = (0..rows * 2 * f).map(|i| ((i * 7919) % 2000) as f32 / 20.0 - 50.0).collect();
            let both = Tensor::from_vec(v, (rows, 2 * f), &Device::Cpu).unwrap();
            for dtype in [DType::F32, DType::BF16] {
                let both = both.to_dtype(dtype).unwrap();
                let composed = (both.narrow(D::Minus1, 0, f).unwrap().silu().unwrap() * both.narrow(D::Minus1, f, f).unwrap()).unwrap();
                let fused = SwiGlu::forward(&both).unwrap();
                assert_eq!(fused.dims(), [rows, f]);
                let bits = |t: &Tensor| t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert!(bits(&fused) == bits(&composed), "{dtype:?} [{rows}, {}]: differs from the composed form", 2 * f);
            }
        }
        let odd = Tensor::zeros((2, 7), DType::F32, &Device::Cpu).unwrap();
        assert!(SwiGlu::forward(&odd).unwrap_err().to_string().contains("[2, 7]"));
    }
}
