//! Building blocks of the fused CPU kernels: the element types they read and write (f32
//! and bf16, computed in f32), branch-free `exp` and `erf` that the compiler vectorises,
//! and [`vectorised`], which runs a closure in a copy compiled for the widest vector ISA
//! the CPU has (AVX-512, else AVX2 + FMA, else the baseline), chosen at run time. Kernels
//! are written as plain loops over slices with `#[inline(always)]` helpers, so the bf16
//! conversions and the maths are inlined into that copy rather than called per element.

pub(crate) use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};
use half::bf16;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// An element type the fused kernels read and write; all arithmetic is in f32.
pub(crate) trait Elem: candle_core::WithDType {
    const ZERO: Self;
    fn get(self) -> f32;
    fn put(x: f32) -> Self;
    /// The elements of `storage`, if it holds this type.
    fn slice(storage: &CpuStorage) -> Option<&[Self]>;
    fn wrap(values: Vec<Self>) -> CpuStorage;
}

impl Elem for f32 {
    const ZERO: f32 = 0.0;
    #[inline(always)]
    fn get(self) -> f32 {
        self
    }
    #[inline(always)]
    fn put(x: f32) -> f32 {
        x
    }
    fn slice(storage: &CpuStorage) -> Option<&[f32]> {
        match storage {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(values: Vec<f32>) -> CpuStorage {
        CpuStorage::F32(values)
    }
}

impl Elem for bf16 {
    const ZERO: bf16 = bf16::ZERO;
    #[inline(always)]
    fn get(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
    /// Round to nearest even, NaN kept quiet: bit-identical to `half::bf16::from_f32`,
    /// written without branches so that it vectorises.
    #[inline(always)]
    fn put(x: f32) -> bf16 {
        let b = x.to_bits();
        let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
        let nan = (b & 0x7fff_ffff) > 0x7f80_0000;
        bf16::from_bits(if nan { ((b >> 16) | 0x40) as u16 } else { rounded })
    }
    fn slice(storage: &CpuStorage) -> Option<&[bf16]> {
        match storage {
            CpuStorage::BF16(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(values: Vec<bf16>) -> CpuStorage {
        CpuStorage::BF16(values)
    }
}

/// The contiguous elements a layout addresses in a storage.
pub(crate) fn contiguous<'a, E: Elem>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [E]> {
    let Some(all) = E::slice(storage) else {
        candle_core::bail!("{op}: expected {:?} storage, found {:?}", <E as candle_core::WithDType>::DTYPE, BackendStorage::dtype(storage))
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&all[start..end]),
        None => candle_core::bail!("{op}: expected a contiguous tensor, found strides {:?}", layout.stride()),
    }
}

/// Runs `f` on the elements of `t` (made contiguous first if needed), a CPU tensor of
/// element type `E`.
pub(crate) fn with_elems<E: Elem, R>(t: &Tensor, op: &str, f: impl FnOnce(&[E]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else { candle_core::bail!("{op}: expected a CPU tensor") };
    f(contiguous::<E>(cpu, layout, op)?)
}

/// A tensor of `shape` on the CPU holding `values`.
pub(crate) fn tensor<E: Elem>(values: Vec<E>, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(values, shape, &candle_core::Device::Cpu)
}

/// `e^x` in f32 to about 1 ulp (Cephes' `expf`: x = n·ln2 + r, a degree-6 polynomial in
/// r, times 2^n); 0 below the smallest normal result, +∞ above the largest.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let xc = x.clamp(-87.336_55, 88.722_83);
    let n = (xc * LOG2E + 0.5).floor();
    let r = xc - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let e = p * r * r + r + 1.0;
    let scaled = e * pow2i(n);
    if x < -87.336_55 {
        0.0
    } else if x > 88.722_83 {
        f32::INFINITY
    } else {
        scaled
    }
}

/// `2^n` for an integral `n` in −126 ..= 128 (128 gives +∞), from the bits of
/// `n + 1.5·2²³`, whose low mantissa bits hold `n`: the bits of `(n as i32 + 127) << 23`
/// without the saturating `as i32`, which is not vectorised (it cost a fifth of a batched
/// serving step inside [`exp`]).
#[inline(always)]
fn pow2i(n: f32) -> f32 {
    let n_bits = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// `erf(x)` as PyTorch's vectorised CPU kernels compute it (Abramowitz & Stegun 7.1.26,
/// absolute error below 1.5e-7), so exact-erf GELU follows the reference closely.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (0.327_591_1 * a + 1.0);
    let r = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_74) * t + 0.254_829_6) * t;
    let y = 1.0 - r * exp(-a * a);
    y.copysign(x)
}

/// Σ f(v) over 16 lanes then the tail (an order the compiler can vectorise; every
/// reduction of the fused kernels uses it or [`lane_sum2`], so they all sum alike).
#[inline(always)]
pub(crate) fn lane_sum<T: Copy>(v: &[T], f: impl Fn(T) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ f(a, b) over two slices of one length, in [`lane_sum`]'s order.
#[inline(always)]
pub(crate) fn lane_sum2<A: Copy, B: Copy>(a: &[A], b: &[B], f: impl Fn(A, B) -> f32) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(&x, &y)| f(x, y)).sum();
    for (xa, xb) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += f(xa[l], xb[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// max f(v) over 16 lanes (−∞ for an empty slice; NaNs are skipped, as `x > max` is
/// false for them).
#[inline(always)]
pub(crate) fn lane_max<T: Copy>(v: &[T], f: impl Fn(T) -> f32) -> f32 {
    let pick = |m: f32, x: f32| if x > m { x } else { m };
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = v.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| pick(m, f(x)));
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = pick(*a, f(x));
        }
    }
    acc.iter().fold(tail, |m, &x| pick(m, x))
}

/// Runs `f` compiled for the widest vector ISA this CPU has. Pass an
/// `#[inline(always)]` closure that calls `#[inline(always)]` code: a closure the compiler
/// does not inline stays a separate baseline (SSE2) function, with `floor` called out of
/// line and nothing vectorised — which is what every fused kernel ran until the closures
/// were marked.
#[inline(always)]
pub(crate) fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma,avx2")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if level() == 2 {
            // SAFETY: the CPU has these features (checked once in `level`).
            return unsafe { avx512(f) };
        }
        if level() == 1 {
            // SAFETY: as above.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// 2: AVX-512 (F, BW, VL, DQ); 1: AVX2 + FMA; 0: baseline — from the process's kernel
/// level (`dispatch`), so `DLM_KERNEL_LEVEL` lowers these kernels too.
#[cfg(target_arch = "x86_64")]
fn level() -> u8 {
    use super::Level;
    match super::level() {
        Level::AmxBf16 | Level::Avx512Bf16 | Level::Avx512 => 2,
        Level::Avx2 => 1,
        Level::Portable => 0,
    }
}

/// A vector of `n` elements written by `fill(c, chunk)` over its parallel chunks of
/// `chunk` elements (`c`: the chunk's index), without zeroing it first: a fresh output
/// costs one write pass, not a memset and then the writes.
///
/// # Safety
/// `fill` must write every element of every chunk it is given.
pub(crate) unsafe fn par_fill<E: Send>(n: usize, chunk: usize, fill: impl Fn(usize, &mut [MaybeUninit<E>]) + Sync) -> Vec<E> {
    let mut v = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n].par_chunks_mut(chunk.max(1)).enumerate().for_each(|(c, x)| fill(c, x));
    // SAFETY: `fill` initialised all n elements (the caller's promise).
    unsafe { v.set_len(n) };
    v
}

/// Rows per parallel task: enough work per task to amortise scheduling.
pub(crate) fn rows_per_task(rows: usize, width: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let by_threads = rows.div_ceil(4 * threads);
    let by_work = 16_384usize.div_ceil(width.max(1));
    by_threads.max(by_work).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_equals_half() {
        let specials = [0.0f32, -0.0, 1.0, f32::MAX, f32::MIN, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-40, -3.3e38];
        let mut x = 0x1234_5678u32;
        let randoms = (0..100_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            f32::from_bits(x)
        });
        for v in specials.into_iter().chain(randoms) {
            assert_eq!(<bf16 as Elem>::put(v).to_bits(), bf16::from_f32(v).to_bits(), "{v:e}");
        }
    }

    #[test]
    fn pow2i_equals_the_integer_cast_over_exps_range() {
        // exp's n = floor(clamp(x)·log2 e + 0.5) spans −126 ..= 128.
        for n in -126..=128 {
            assert_eq!(pow2i(n as f32).to_bits(), ((n + 127) << 23) as u32, "2^{n}");
        }
    }

    #[test]
    fn exp_and_erf_match_libm() {
        // exp: relative error ≤ 2 ulp over the useful range; exact 0 / ∞ outside it.
        for i in -8730..=8800 {
            let x = i as f32 / 100.0 + 0.003;
            let (got, want) = (exp(x), x.exp());
            assert!(((got - want) / want).abs() < 2.5e-7, "exp({x}) = {got} vs {want}");
        }
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        // erf: absolute error < 3e-7 (A&S 7.1.26: 1.5e-7, plus f32 rounding), odd.
        for i in -600..=600 {
            let x = i as f32 / 100.0;
            let want = libm_erf(x as f64);
            assert!((erf(x) as f64 - want).abs() < 3e-7, "erf({x}) = {} vs {want}", erf(x));
            assert_eq!(erf(-x), -erf(x));
        }
    }

    /// erf by its Maclaurin series (|x| ≤ 3) and continued fraction beyond, in f64.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() > 3.0 {
            // erfc(x) = exp(-x²)/(x√π) · 1/(1 + 1/(2x²)/(1 + 2/(2x²)/(1 + ...)))
            let (a, mut f) = (x.abs(), 0.0);
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f);
            return (1.0 - erfc).copysign(x);
        }
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}
