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

    /// `C[m, n] = Σ_k A(i, k) · B(j, k)`, row-major into `c`.
    ///
    /// # Safety
    /// The kernel must be one the process's CPU allows ([`Bf16Kernel::for_level`] of a
    /// level at most [`Level::detected`]); `a`/`b` must address `m` x `k` and `n` x `k`,
    /// all three at least 1 (the `Bf16Matmul` op answers empty products itself).
    #[cfg(target_arch = "x86_64")]
    pub(super) unsafe fn gemm(
        self,
        a: super::bf16_gemm::View,
        b: super::bf16_gemm::View,
        dims: (usize, usize, usize),
        c: &mut [half::bf16],
        parallel: bool,
    ) {
        // SAFETY: as the caller promised.
        unsafe {
            match self {
                Bf16Kernel::Avx512Bf16 => super::bf16_gemm::gemm(a, b, dims, c, parallel),
                Bf16Kernel::Amx => super::amx::gemm(a, b, dims, c, parallel),
                #[cfg(test)]
                Bf16Kernel::AmxModel => {
                    use super::amx::tile_model::TileModel;
                    super::amx::gemm_on(|| TileModel::new(&super::amx::CONFIG), a, b, dims, c, parallel)
                }
            }
        }
    }
}
