//! CPU kernels behind the encoder's hot operations, each equal to the plain candle
//! computation up to the order of floating-point additions (tests below, in `elementwise`'s
//! tests and in `tests/kernels.rs`), each a candle custom op with a backward pass,
//! chosen at run time from the CPU's features:
//! - `dispatch`: the kernel level (`amx` > `avx512bf16` > `avx512` > `avx2` > `portable`),
//!   picked once per process, lowered with `DLM_KERNEL_LEVEL`, reported by
//!   [`system_report`] (`dlm inspect --system`); `cpu` probes the features (CPUID, XCR0,
//!   Linux's AMX permission); `threads` applies `DLM_NUM_THREADS` to every pool;
//! - bf16 matrix products on AMX tiles (`amx`, with a scalar model of the tile
//!   instructions that tests the driver on any CPU) or with AVX512-BF16 (`bf16_gemm`);
//!   `bf16_kernel` maps a level to its kernel, and the `Bf16Matmul` custom op runs it,
//!   forward and backward (two more products);
//! - f32 products of up to 64 rows, or up to 256 against a frozen weight, read in
//!   32-column panels kept per frozen weight (`f32_skinny`, AVX-512F: cached denoising
//!   steps, few-row vocabulary projections, a tied decoder's included);
//! - fused elementwise sublayers, one read and one write each way, vectorised for the
//!   level's vector ISA (`vector`): bias + dropout + residual + LayerNorm
//!   (`add_norm`), bias + erf GELU (`gelu`), scale + mask + softmax + dropout
//!   (`softmax`), self-attention from the fused Q/K/V product with an online softmax
//!   (`attention`), a cached step's queries over a sequence's keys and values
//!   (`cross_attention`), bias add (`bias_add`), counter-based dropout (`dropout`), vocabulary cross-entropy
//!   (`cross_entropy`); and AdamW as one in-place pass over a parameter and its state
//!   (`adamw`).
//!
//! `DLM_FUSED=0` in the environment turns the fused elementwise kernels off (the composed
//! candle forms run instead), for before/after measurements.

mod adamw;
mod add_norm;
mod attention;
#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod bf16_gemm;
mod bf16_kernel;
mod bias_add;
mod cpu;
mod cross_attention;
mod cross_entropy;
mod dispatch;
mod dropout;
mod f32_gemm;
#[cfg(target_arch = "x86_64")]
mod f32_skinny;
mod gelu;
mod linear;
mod softmax;
mod swiglu;
mod threads;
mod vector;
pub(crate) mod vocab_reduce;

pub use adamw::{AdamWStep, adamw_step};
pub(crate) use add_norm::AddNorm;
pub(crate) use attention::Attention;
pub(crate) use bias_add::BiasAdd;
pub(crate) use cross_attention::cross_attention;
pub use cross_entropy::cross_entropy;
pub(crate) use dropout::DropMask;
pub(crate) use gelu::BiasGelu;
pub(crate) use linear::{Linear, Prepacked};
pub(crate) use softmax::MaskedSoftmax;
pub(crate) use swiglu::SwiGlu;

/// Whether the fused elementwise kernels are on (`DLM_FUSED` unset or not `0`).
pub(crate) fn fused_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("DLM_FUSED").map_or(true, |v| v != "0"))
}

pub use cpu::Features;
pub use dispatch::{AmxCheck, KernelError, LEVEL_VAR, Level, SystemReport, init, level, system_report};
pub use threads::{THREADS_VAR, configure_threads, start};

use bf16_kernel::Bf16Kernel;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// `a [.., m, k] · b [.., k, n] → [.., m, n]`, as [`Tensor::matmul`] (same batch dims).
/// bf16 CPU tensors take the bf16 GEMM kernel of the process's [`level`] (AMX or
/// AVX512-BF16), forward and backward; everything else is candle's matmul.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_with(Bf16Kernel::for_level(level()), a, b)
}

/// [`matmul`] with a given bf16 kernel (`None`: candle's matmul).
fn matmul_with(kernel: Option<Bf16Kernel>, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fast = a.dtype() == DType::BF16
        && b.dtype() == DType::BF16
        && a.device().is_cpu()
        && a.rank() >= 2
        && a.rank() == b.rank();
    match kernel {
        Some(kernel) if fast => a.apply_op2(b, Bf16Matmul(kernel)),
        _ => a.matmul(b),
    }
}

/// [`matmul`] for operands that may be any strided views (attention's per-head slices):
/// the kernel reads them in place; candle's matmul gets contiguous copies.
pub(crate) fn strided_matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dtype() == DType::BF16 && a.device().is_cpu() && Bf16Kernel::for_level(level()).is_some() {
        matmul(a, b)
    } else {
        a.contiguous()?.matmul(&b.contiguous()?)
    }
}

/// The bf16 GEMM as a candle op: any strides, leading batch dims equal on both sides.
struct Bf16Matmul(Bf16Kernel);

impl CustomOp2 for Bf16Matmul {
    fn name(&self) -> &'static str {
        "bf16-matmul"
    }

    #[cfg(target_arch = "x86_64")]
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        use bf16_gemm::View;
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
        // Batch item `i` as the kernel's views.
        let views = |i: usize| {
            let av = View { ptr: a[l1.start_offset() + offset(sa, i)..].as_ptr(), rs: sa[r - 2], cs: sa[r - 1] };
            let bv = View { ptr: b[l2.start_offset() + offset(sb, i)..].as_ptr(), rs: sb[r - 1], cs: sb[r - 2] };
            (av, bf16_gemm::Operand::View(bv))
        };
        // SAFETY (both products): the kernel comes from a level the CPU allows (`level` or
        // a test's choice among them); the views address m x k and n x k elements of their
        // storages, as their layouts say.
        let c: Vec<bf16> = if m * n * k == 0 {
            vec![bf16::ZERO; batch * m * n]
        } else if batch == 1 {
            let (av, bv) = views(0);
            unsafe { self.0.new_product(av, bv, (m, n, k), None, true, bf16_gemm::Dst::Bf16) }
        } else {
            // Items in parallel, each written in place into its part of one buffer.
            let mut c = Vec::with_capacity(batch * m * n);
            let out = bf16_gemm::Dst::Bf16(c.as_mut_ptr());
            (0..batch).into_par_iter().for_each(|i| {
                let ((av, bv), out) = (views(i), &out);
                // SAFETY: as above; item i writes elements i·m·n.. of the reservation only.
                unsafe { self.0.gemm(av, bv, (m, n, k), out.add(i * m * n), None, false) }
            });
            // SAFETY: every item wrote all of its m·n elements.
            unsafe { c.set_len(batch * m * n) };
            c
        };
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
        let kernel = Some(self.0);
        Ok((Some(matmul_with(kernel, grad, &b.t()?)?), Some(matmul_with(kernel, &a.t()?, grad)?)))
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
        // (m, k, n): edges of every block size (AVX512-BF16: MR 12, NR 32, pair 2,
        // 16-pair transpose, QC 384 pairs: k 800 has two K blocks; AMX: 16-row tiles, 32 x 32 blocks, 32-k steps)
        let shapes = [
            (1, 1, 1), (13, 7, 33), (12, 32, 32), (25, 300, 65), (37, 258, 100), (3, 2, 1),
            (32, 64, 32), (33, 66, 17), (64, 96, 31), (16, 31, 16), (65, 32, 48), (31, 33, 15), (14, 800, 40),
        ];
        for kernel in Bf16Kernel::here() {
            for &(m, k, n) in &shapes {
                let a = pattern(&[m, k], 1);
                let w = pattern(&[n, k], 2); // Linear weight: b = wᵀ, strided
                let fast = matmul_with(Some(kernel), &a, &w.t().unwrap()).unwrap();
                let plain = a.matmul(&w.t().unwrap()).unwrap();
                assert!(max_rel(&fast, &plain) < 1e-2, "{kernel:?} {m}x{k}x{n}: {}", max_rel(&fast, &plain));
                // transposed A (weight-gradient layout) and contiguous B
                let at = pattern(&[k, m], 3).t().unwrap();
                let b = pattern(&[k, n], 4);
                let fast = matmul_with(Some(kernel), &at, &b).unwrap();
                let plain = at.matmul(&b).unwrap();
                assert!(max_rel(&fast, &plain) < 1e-2, "{kernel:?} t {m}x{k}x{n}: {}", max_rel(&fast, &plain));
            }
            // batched, strided (attention: [b, heads, s, d] views of [b, s, heads, d]),
            // with d = 32 so that the AMX kernel reads A in place
            for d in [8, 32] {
                let q = pattern(&[2, 35, 3, d], 5).transpose(1, 2).unwrap(); // [2, 3, 35, d]
                let k = pattern(&[2, 35, 3, d], 6).transpose(1, 2).unwrap();
                let kt = k.t().unwrap(); // [2, 3, d, 35]
                let plain = q.contiguous().unwrap().matmul(&kt.contiguous().unwrap()).unwrap(); // candle needs copies
                let fast = matmul_with(Some(kernel), &q, &kt).unwrap();
                assert!(max_rel(&fast, &plain) < 1e-2, "{kernel:?} attention d {d}");
            }
        }
    }

    /// Gradients through each kernel equal candle's, for both operands.
    #[test]
    fn gradients_equal_candle() {
        let (m, k, n) = (19, 70, 45);
        let a = Var::from_tensor(&pattern(&[m, k], 7)).unwrap();
        let w = Var::from_tensor(&pattern(&[n, k], 8)).unwrap();
        let up = pattern(&[m, n], 9); // upstream gradient via a weighted sum
        let grads = |kernel: Option<Bf16Kernel>| {
            let y = matmul_with(kernel, &a, &w.t().unwrap()).unwrap();
            let loss = (y * &up).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            (g.get(&a).unwrap().clone(), g.get(&w).unwrap().clone())
        };
        let (pa, pw) = grads(None);
        for kernel in Bf16Kernel::here() {
            let (fa, fw) = grads(Some(kernel));
            assert!(max_rel(&fa, &pa) < 1e-2, "{kernel:?} dA {}", max_rel(&fa, &pa));
            assert!(max_rel(&fw, &pw) < 1e-2, "{kernel:?} dW {}", max_rel(&fw, &pw));
        }
    }

    /// What `matmul` runs at the process's level equals candle's matmul, in bf16 and f32.
    #[test]
    fn dispatched_matmul_equals_candle() {
        let a = pattern(&[20, 40], 10);
        let b = pattern(&[40, 24], 11);
        for dtype in [DType::BF16, DType::F32] {
            let (a, b) = (a.to_dtype(dtype).unwrap(), b.to_dtype(dtype).unwrap());
            assert!(max_rel(&matmul(&a, &b).unwrap(), &a.matmul(&b).unwrap()) < 1e-2, "{dtype:?} at {}", level());
        }
    }
}
