//! The bf16 GEMM kernel each kernel level runs, behind one call for the `Bf16Matmul` op.

use super::dispatch::Level;

/// A bf16 GEMM kernel (all share the [`View`](super::bf16_gemm::View) interface).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) enum Bf16Kernel {
    /// `vdpbf16ps` on AVX512-BF16 (`bf16_gemm`).
    Avx512Bf16,
    /// AMX tiles (`amx`).
    Amx,
    /// The AMX driver on the scalar tile model (tests).
    #[cfg(test)]
    AmxModel,
}

impl Bf16Kernel {
    /// The kernel a level runs; `None`: candle's matmul (widen to f32).
    pub(super) fn for_level(level: Level) -> Option<Self> {
        match level {
            Level::AmxBf16 => Some(Bf16Kernel::Amx),
            Level::Avx512Bf16 => Some(Bf16Kernel::Avx512Bf16),
            Level::Avx512 | Level::Avx2 | Level::Portable => None,
        }
    }

    /// `C[m, n] = Σ_k A(i, k) · B(j, k) (+ bias[j])`, row-major into `c` (bf16, or the f32
    /// sums), every element written once.
    ///
    /// # Safety
    /// The kernel must be one the process's CPU allows ([`Bf16Kernel::for_level`] of a
    /// level at most [`Level::detected`]); `a`/`b` must address `m` x `k` and `n` x `k`,
    /// all three at least 1 (callers answer empty products themselves); `c` must be
    /// writable for `m * n` elements and `bias` hold `n`.
    #[cfg(target_arch = "x86_64")]
    pub(super) unsafe fn gemm(
        self,
        a: super::bf16_gemm::View,
        b: super::bf16_gemm::Operand,
        dims: (usize, usize, usize),
        c: super::bf16_gemm::Dst,
        bias: Option<&[half::bf16]>,
        parallel: bool,
    ) {
        // SAFETY: as the caller promised.
        unsafe {
            match self {
                Bf16Kernel::Avx512Bf16 => super::bf16_gemm::gemm(a, b, dims, c, bias, parallel),
                Bf16Kernel::Amx => super::amx::gemm(a, b, dims, c, bias, parallel),
                #[cfg(test)]
                Bf16Kernel::AmxModel => {
                    use super::amx::tile_model::TileModel;
                    super::amx::gemm_on(|| TileModel::new(&super::amx::CONFIG), None, a, b, dims, c, bias, parallel)
                }
            }
        }
    }

    /// `A · Bᵀ (+ bias)` as a new row-major `[m, n]` vector (see [`Bf16Kernel::gemm`]) in
    /// the form `out` gives its destination (`Dst::Bf16`, or `Dst::Bf16Gelu` for GELU of
    /// each rounded sum), written once, never zeroed first; an empty contraction (`k` 0)
    /// gives the bias, or zeros, in that form.
    ///
    /// # Safety
    /// As [`Bf16Kernel::gemm`], but any of `m`, `n`, `k` may be 0.
    #[cfg(target_arch = "x86_64")]
    pub(super) unsafe fn new_product(
        self,
        a: super::bf16_gemm::View,
        b: super::bf16_gemm::Operand,
        (m, n, k): (usize, usize, usize),
        bias: Option<&[half::bf16]>,
        parallel: bool,
        out: fn(*mut half::bf16) -> super::bf16_gemm::Dst,
    ) -> Vec<half::bf16> {
        let mut c = Vec::with_capacity(m * n);
        let dst = out(c.as_mut_ptr());
        if m * n * k == 0 {
            let sum = |j: usize| bias.map_or(0.0, |b| b[j].to_f32());
            for i in 0..m * n {
                // SAFETY: i < m * n, inside the reservation; each element written once.
                unsafe { dst.add(i).put(sum(i % n)) };
            }
        } else {
            // SAFETY: as the caller promised; the kernel writes all `m * n` elements of the
            // reserved buffer without reading them.
            unsafe { self.gemm(a, b, (m, n, k), dst, bias, parallel) };
        }
        // SAFETY: all m * n elements were written above.
        unsafe { c.set_len(m * n) };
        c
    }

    /// The bf16 kernels this machine can run, for tests: the AMX driver on the scalar tile
    /// model (any x86-64 CPU), then the kernel of every level up to the detected one. The
    /// real AMX kernel runs only on a CPU with AMX; elsewhere this says it was skipped.
    #[cfg(test)]
    pub(super) fn here() -> Vec<Bf16Kernel> {
        let mut kernels = if cfg!(target_arch = "x86_64") { vec![Bf16Kernel::AmxModel] } else { vec![] };
        kernels.extend(Level::ALL.into_iter().filter(|&l| l <= Level::detected()).filter_map(Bf16Kernel::for_level));
        if !kernels.contains(&Bf16Kernel::Amx) {
            println!("skipped: the real AMX kernel (this CPU has no AMX-BF16, or the OS refused tile state)");
        }
        kernels
    }
}
