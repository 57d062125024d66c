//! CPU kernels behind the encoder's hot operations, each equal to the plain candle
//! computation up to the order of floating-point additions (tests below, in `norm`'s
//! tests and in `tests/kernels.rs`), each a candle custom op with a backward pass:
//! - a bf16 matrix product on AVX512-BF16 (`bf16_gemm`), whose backward pass is two more
//!   such products;
//! - fused elementwise sublayers, one read and one write each way, vectorised for the
//!   CPU's widest ISA at run time (`vector`): bias + dropout + residual + LayerNorm
//!   (`add_norm`), bias + erf GELU (`gelu`), scale + mask + softmax + dropout
//!   (`softmax`), counter-based dropout (`dropout`), vocabulary cross-entropy
//!   (`cross_entropy`); and AdamW as one in-place pass over a parameter and its state
//!   (`adamw`).
//!
//! `DLM_FUSED=0` in the environment turns the fused elementwise kernels off (the composed
//! candle forms run instead), for before/after measurements.

mod adamw;
mod add_norm;
#[cfg(target_arch = "x86_64")]
mod bf16_gemm;
mod cross_entropy;
mod dropout;
mod gelu;
mod softmax;
mod vector;

pub use adamw::{AdamWStep, adamw_step};
pub(crate) use add_norm::AddNorm;
pub use cross_entropy::cross_entropy;
pub(crate) use dropout::DropMask;
pub(crate) use gelu::BiasGelu;
pub(crate) use softmax::MaskedSoftmax;

/// Whether the fused elementwise kernels are on (`DLM_FUSED` unset or not `0`).
pub(crate) fn fused_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("DLM_FUSED").map_or(true, |v| v != "0"))
}

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// `a [.., m, k] · b [.., k, n] → [.., m, n]`, as [`Tensor::matmul`] (same batch dims).
/// bf16 CPU tensors on a CPU with AVX512-BF16 take the bf16 GEMM kernel, forward and
/// backward; everything else is candle's matmul.
pub(crate) fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fast = a.dtype() == DType::BF16
        && b.dtype() == DType::BF16
        && a.device().is_cpu()
        && a.rank() >= 2
        && a.rank() == b.rank()
        && bf16_gemm_available();
    if fast { a.apply_op2(b, Bf16Matmul) } else { a.matmul(b) }
}

/// [`matmul`] for operands that may be any strided views (attention's per-head slices):
/// the kernel reads them in place; candle's matmul gets contiguous copies.
pub(crate) fn strided_matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dtype() == DType::BF16 && a.device().is_cpu() && bf16_gemm_available() {
        matmul(a, b)
    } else {
        a.contiguous()?.matmul(&b.contiguous()?)
    }
}

fn bf16_gemm_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(bf16_gemm::available)
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The bf16 GEMM as a candle op: any strides, leading batch dims equal on both sides.
struct Bf16Matmul;

impl CustomOp2 for Bf16Matmul {
    fn name(&self) -> &'static str {
        "bf16-matmul"
    }

    #[cfg(target_arch = "x86_64")]
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        use bf16_gemm::{View, gemm};
        use half::bf16;
        use rayon::prelude::*;
        let (CpuStorage::BF16(a), CpuStorage::BF16(b)) = (s1, s2) else {
            candle_core::bail!("bf16-matmul: expected bf16 storage")
        };
        let (ad, bd) = (l1.dims(), l2.dims());
        let r = ad.len();
        let (m, k, n) = (ad[r - 2], ad[r - 1], bd[r - 1]);
        if bd.len() != r || bd[r - 2] != k || ad[..r - 2] != bd[..r - 2] {
            candle_core::bail!("bf16-matmul: shapes {ad:?} and {bd:?} do not multiply")
        }
        let batch: usize = ad[..r - 2].iter().product();
        let (sa, sb) = (l1.stride(), l2.stride());
        // Offset of batch item `i` (row-major over the leading dims) in a storage.
        let offset = |strides: &[usize], mut i: usize| {
            let mut o = 0;
            for d in (0..r - 2).rev() {
                o += (i % ad[d]) * strides[d];
                i /= ad[d];
            }
            o
        };
        let mut c = vec![bf16::ZERO; batch * m * n];
        let one = |(i, c): (usize, &mut [bf16])| {
            if m * n * k == 0 {
                return c.fill(bf16::ZERO);
            }
            let av = View { ptr: a[l1.start_offset() + offset(sa, i)..].as_ptr(), rs: sa[r - 2], cs: sa[r - 1] };
            let bv = View { ptr: b[l2.start_offset() + offset(sb, i)..].as_ptr(), rs: sb[r - 1], cs: sb[r - 2] };
            // SAFETY: the CPU was checked by `bf16_gemm_available`; the views address
            // m x k and n x k elements of their storages, as their layouts say.
            unsafe { gemm(av, bv, (m, n, k), c, batch == 1) }
        };
        if batch == 1 {
            one((0, &mut c));
        } else if m * n > 0 {
            c.par_chunks_mut(m * n).enumerate().for_each(one);
        }
        let mut dims = ad.to_vec();
        dims[r - 1] = n;
        Ok((CpuStorage::BF16(c), Shape::from(dims)))
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("bf16-matmul needs x86-64")
    }

    /// `dA = dC · Bᵀ`, `dB = Aᵀ · dC`.
    fn bwd(&self, a: &Tensor, b: &Tensor, _: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(matmul(grad, &b.t()?)?), Some(matmul(&a.t()?, grad)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// bf16 tensor with values in [-1, 1) from a fixed pattern.
    fn pattern(shape: &[usize], seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((i * 7919 + seed * 104729) % 1000) as f32 / 500.0 - 1.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let (a, b) = (a.to_dtype(DType::F32).unwrap(), b.to_dtype(DType::F32).unwrap());
        let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale
    }

    /// Kernel vs candle's bf16 matmul (f32 accumulation, one rounding): both round the
    /// same f32 sums to bf16, so they differ by at most one bf16 ulp (2^-8 relative) where
    /// the f32 sums differ in their last bits; 1e-2 of the largest entry bounds that.
    #[test]
    fn equals_candle_on_odd_shapes_and_strides() {
        if !bf16_gemm_available() {
            return;
        }
        // (m, k, n): edges of every block size (MR 12, NR 32, pair 2, 16-pair transpose, QC 128)
        for &(m, k, n) in &[(1, 1, 1), (13, 7, 33), (12, 32, 32), (25, 300, 65), (37, 258, 100), (3, 2, 1)] {
            let a = pattern(&[m, k], 1);
            let w = pattern(&[n, k], 2); // Linear weight: b = wᵀ, strided
            let fast = matmul(&a, &w.t().unwrap()).unwrap();
            let plain = a.matmul(&w.t().unwrap()).unwrap();
            assert!(max_rel(&fast, &plain) < 1e-2, "{m}x{k}x{n}: {}", max_rel(&fast, &plain));
            // transposed A (weight-gradient layout) and contiguous B
            let at = pattern(&[k, m], 3).t().unwrap();
            let b = pattern(&[k, n], 4);
            let fast = matmul(&at, &b).unwrap();
            let plain = at.matmul(&b).unwrap();
            assert!(max_rel(&fast, &plain) < 1e-2, "t {m}x{k}x{n}: {}", max_rel(&fast, &plain));
        }
        // batched, strided (attention: [b, heads, s, d] views of [b, s, heads, d])
        let q = pattern(&[2, 5, 3, 8], 5).transpose(1, 2).unwrap(); // [2, 3, 5, 8]
        let k = pattern(&[2, 5, 3, 8], 6).transpose(1, 2).unwrap();
        let kt = k.t().unwrap(); // [2, 3, 8, 5]
        let plain = q.contiguous().unwrap().matmul(&kt.contiguous().unwrap()).unwrap(); // candle needs copies
        assert!(max_rel(&matmul(&q, &kt).unwrap(), &plain) < 1e-2);
    }

    /// Gradients through the kernel equal candle's, for both operands.
    #[test]
    fn gradients_equal_candle() {
        if !bf16_gemm_available() {
            return;
        }
        let (m, k, n) = (19, 70, 45);
        let a = Var::from_tensor(&pattern(&[m, k], 7)).unwrap();
        let w = Var::from_tensor(&pattern(&[n, k], 8)).unwrap();
        let up = pattern(&[m, n], 9); // upstream gradient via a weighted sum
        let grads = |fast: bool| {
            let y = if fast { matmul(&a, &w.t().unwrap()) } else { a.matmul(&w.t().unwrap()) }.unwrap();
            let loss = (y * &up).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            (g.get(&a).unwrap().clone(), g.get(&w).unwrap().clone())
        };
        let (fa, fw) = grads(true);
        let (pa, pw) = grads(false);
        assert!(max_rel(&fa, &pa) < 1e-2, "{}", max_rel(&fa, &pa));
        assert!(max_rel(&fw, &pw) < 1e-2, "{}", max_rel(&fw, &pw));
    }
}
