//! A bf16 GEMM for x86-64 CPUs with AVX512-BF16: `C = A · B` with bf16 inputs, f32
//! accumulation (`vdpbf16ps`: each f32 lane adds two exact bf16 products) and one
//! round-to-nearest-even to bf16 at the end — what candle's bf16 matmul computes (widen to
//! f32, f32 GEMM, narrow), up to the order of the f32 additions, at 3-5x the speed.
//!
//! Layout (BLIS-style): B is packed into panels of NR = 32 columns whose u32 lanes hold
//! the k-pairs `(B[2q, j], B[2q+1, j])`; A is read in place when its k-pairs are
//! contiguous (the forward pass and the input gradient) and packed into MR = 12-row panels
//! otherwise (the weight gradient). A 12 x 32 micro-tile keeps 24 accumulators in
//! registers; K is blocked by QC pairs so a B micro-panel (16 KiB) stays in L1.

use core::arch::x86_64::*;
use half::bf16;
use rayon::prelude::*;

/// Rows of a micro-tile (A panel width).
const MR: usize = 12;
/// Columns of a micro-tile (B panel width): two 16-lane f32 registers.
const NR: usize = 32;
/// k-pairs per K block.
const QC: usize = 128;

/// A strided bf16 matrix: element `(i, k)` at `ptr[i * rs + k * cs]`; `k` is the
/// contraction index (A: `(row, k)`, B: `(column, k)`).
#[derive(Clone, Copy)]
pub struct View {
    pub ptr: *const bf16,
    pub rs: usize,
    pub cs: usize,
}
// SAFETY: a View is only read, while the storage it points into is borrowed by the caller.
unsafe impl Send for View {}
unsafe impl Sync for View {}

impl View {
    /// Pointer to row `i`.
    ///
    /// # Safety
    /// `i` must be a row of the matrix.
    #[inline(always)]
    pub(super) unsafe fn row(&self, i: usize) -> *const bf16 {
        unsafe { self.ptr.add(i * self.rs) }
    }

    /// `(X[i, k], X[i, k+1])` as one u32 (low half first); zero past `kmax`.
    ///
    /// # Safety
    /// `(i, k)` must be inside the matrix.
    #[inline(always)]
    unsafe fn pair(&self, i: usize, k: usize, kmax: usize) -> u32 {
        unsafe {
            let lo = (*self.ptr.add(i * self.rs + k * self.cs)).to_bits() as u32;
            let hi = if k + 1 < kmax { (*self.ptr.add(i * self.rs + (k + 1) * self.cs)).to_bits() as u32 } else { 0 };
            lo | (hi << 16)
        }
    }
}

/// `dst[c * dst_stride + r] = src[r * src_stride + c]` for a 16 x 16 block of u32.
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(src: *const u32, src_stride: usize, dst: *mut u32, dst_stride: usize) {
    unsafe {
        let mut r = [_mm512_setzero_si512(); 16];
        for (i, ri) in r.iter_mut().enumerate() {
            *ri = _mm512_loadu_si512(src.add(i * src_stride) as *const _);
        }
        let mut t = [_mm512_setzero_si512(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
        }
        for b in (0..16).step_by(4) {
            r[b] = _mm512_unpacklo_epi64(t[b], t[b + 2]);
            r[b + 1] = _mm512_unpackhi_epi64(t[b], t[b + 2]);
            r[b + 2] = _mm512_unpacklo_epi64(t[b + 1], t[b + 3]);
            r[b + 3] = _mm512_unpackhi_epi64(t[b + 1], t[b + 3]);
        }
        for i in 0..4 {
            t[i] = _mm512_shuffle_i32x4::<0x88>(r[i], r[i + 4]);
            t[i + 4] = _mm512_shuffle_i32x4::<0xdd>(r[i], r[i + 4]);
            t[i + 8] = _mm512_shuffle_i32x4::<0x88>(r[i + 8], r[i + 12]);
            t[i + 12] = _mm512_shuffle_i32x4::<0xdd>(r[i + 8], r[i + 12]);
        }
        for i in 0..8 {
            r[i] = _mm512_shuffle_i32x4::<0x88>(t[i], t[i + 8]);
            r[i + 8] = _mm512_shuffle_i32x4::<0xdd>(t[i], t[i + 8]);
        }
        for (c, rc) in r.iter().enumerate() {
            _mm512_storeu_si512(dst.add(c * dst_stride) as *mut _, *rc);
        }
    }
}

/// Packs `rows` x `k` of `v` into panels of `width` rows: `[panel][kp][width]` u32 holding
/// the k-pairs, zero-padded past the last row and past the last k (`kp ≥ k/2` pairs).
pub(super) fn pack(v: View, rows: usize, (k, kp): (usize, usize), width: usize, parallel: bool) -> Vec<u32> {
    let mut out = vec![0u32; rows.div_ceil(width) * kp * width];
    let pack_panel = |(p, dst): (usize, &mut [u32])| {
        let r0 = p * width;
        let n = width.min(rows - r0);
        let mut q0 = 0;
        if v.cs == 1 && v.rs % 2 == 0 && width % 16 == 0 && n == width && is_x86_feature_detected!("avx512f") {
            // k-pairs are the u32s of each row: transpose 16 rows x 16 pairs at a time.
            while q0 + 16 <= k / 2 {
                for j0 in (0..width).step_by(16) {
                    // SAFETY: rows r0+j0..r0+j0+16 and pairs q0..q0+16 are inside the
                    // matrix; the destination block is inside this panel; the CPU has
                    // AVX-512 (checked above).
                    unsafe {
                        let src = (v.row(r0 + j0) as *const u32).add(q0);
                        transpose16(src, v.rs / 2, dst.as_mut_ptr().add(q0 * width + j0), width);
                    }
                }
                q0 += 16;
            }
        }
        for q in q0..k.div_ceil(2) {
            for j in 0..n {
                // SAFETY: row r0+j < rows and 2q < k.
                dst[q * width + j] = unsafe { v.pair(r0 + j, 2 * q, k) };
            }
        }
    };
    if parallel {
        out.par_chunks_mut(kp * width).enumerate().for_each(pack_panel);
    } else {
        out.chunks_mut(kp * width).enumerate().for_each(pack_panel);
    }
    out
}

/// One micro-tile over `kp` k-pairs: `acc = (first ? 0 : scratch) + A-tile · B-panel`;
/// then `scratch = acc`, or on the `last` K block the `rows` x `cols` corner of `acc`
/// rounded to bf16 into `c` (row stride `ldc`). A's pair `(r, q)` is at `a[r * ars + q * aqs]`
/// (rows past `rows` re-read the last row; their results are dropped); B's panel is
/// `[kp][NR]` u32 at `b`; `scratch` holds MR x NR f32.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
unsafe fn kernel(
    kp: usize,
    a: *const u32,
    ars: usize,
    aqs: usize,
    b: *const u32,
    scratch: *mut f32,
    (first, last): (bool, bool),
    c: *mut bf16,
    ldc: usize,
    (rows, cols): (usize, usize),
) {
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        if !first {
            for (r, acc) in acc.iter_mut().enumerate() {
                acc[0] = _mm512_loadu_ps(scratch.add(r * NR));
                acc[1] = _mm512_loadu_ps(scratch.add(r * NR + 16));
            }
        }
        let mut ap = [a; MR];
        for (r, p) in ap.iter_mut().enumerate() {
            *p = a.add(r.min(rows - 1) * ars);
        }
        for q in 0..kp {
            let b0: __m512bh = core::mem::transmute(_mm512_loadu_si512(b.add(q * NR) as *const _));
            let b1: __m512bh = core::mem::transmute(_mm512_loadu_si512(b.add(q * NR + 16) as *const _));
            for r in 0..MR {
                let av: __m512bh = core::mem::transmute(_mm512_set1_epi32(*ap[r].add(q * aqs) as i32));
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
            }
        }
        if !last {
            for (r, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(scratch.add(r * NR), acc[0]);
                _mm512_storeu_ps(scratch.add(r * NR + 16), acc[1]);
            }
            return;
        }
        let m0: __mmask16 = if cols >= 16 { 0xffff } else { ((1u32 << cols) - 1) as u16 };
        let m1: __mmask16 = if cols >= 32 {
            0xffff
        } else if cols <= 16 {
            0
        } else {
            ((1u32 << (cols - 16)) - 1) as u16
        };
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let row = c.add(r * ldc) as *mut i16;
            _mm256_mask_storeu_epi16(row, m0, core::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(acc[0])));
            _mm256_mask_storeu_epi16(row.add(16), m1, core::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(acc[1])));
        }
    }
}

pub(super) struct Out(pub(super) *mut bf16);
// SAFETY: parallel tasks write disjoint column panels of the output.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `C[m, n] = Σ_k A(i, k) · B(j, k)` written row-major into `c` (length `m * n`); `a`
/// indexes `(row, k)` and `b` `(column, k)`. With `parallel`, column panels are spread
/// over rayon's threads.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL and AVX512-BF16 (level `avx512bf16`), and `a`/`b` must address `m` x `k` and `n` x `k` elements.
pub unsafe fn gemm(a: View, b: View, (m, n, k): (usize, usize, usize), c: &mut [bf16], parallel: bool) {
    assert_eq!(c.len(), m * n);
    assert!(m * n * k > 0, "empty products are the caller's (Bf16Matmul)");
    let direct = a.cs == 1 && a.rs % 2 == 0 && k % 2 == 0;
    let kp = k.div_ceil(2);
    let pa = if direct { Vec::new() } else { pack(a, m, (k, kp), MR, parallel) };
    let pb = pack(b, n, (k, kp), NR, parallel);
    let (np, mp) = (n.div_ceil(NR), m.div_ceil(MR));
    let out = Out(c.as_mut_ptr());
    let panel = |scratch: &mut Vec<f32>, j: usize| {
        let out = &out;
        scratch.resize(mp * MR * NR, 0.0);
        let cols = NR.min(n - j * NR);
        for q0 in (0..kp).step_by(QC) {
            let qn = QC.min(kp - q0);
            let bp = pb[(j * kp + q0) * NR..].as_ptr();
            for i in 0..mp {
                let s = scratch[i * MR * NR..].as_mut_ptr();
                let flags = (q0 == 0, q0 + qn == kp);
                let shape = (MR.min(m - i * MR), cols);
                // SAFETY: the tile (i, j) is inside C and written by this task only; A rows
                // are clamped to m; the packed panels hold kp pairs.
                unsafe {
                    let cp = out.0.add(i * MR * n + j * NR);
                    if direct {
                        let ap = (a.row(i * MR) as *const u32).add(q0);
                        kernel(qn, ap, a.rs / 2, 1, bp, s, flags, cp, n, shape)
                    } else {
                        kernel(qn, pa[(i * kp + q0) * MR..].as_ptr(), 1, MR, bp, s, flags, cp, n, shape)
                    }
                }
            }
        }
    };
    if parallel {
        (0..np).into_par_iter().for_each_init(Vec::new, panel);
    } else {
        let mut scratch = Vec::new();
        (0..np).for_each(|j| panel(&mut scratch, j));
    }
}
