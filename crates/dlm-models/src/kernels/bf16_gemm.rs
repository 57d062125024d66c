//! A bf16 GEMM for x86-64 CPUs with AVX512-BF16: `C = A · B` with bf16 inputs, f32
//! accumulation (`vdpbf16ps`: each f32 lane adds two exact bf16 products) and one
//! round-to-nearest-even to bf16 at the end — what candle's bf16 matmul computes (widen to
//! f32, f32 GEMM, narrow), up to the order of the f32 additions, at 3-5x the speed.
//!
//! Layout (BLIS-style): B is packed into panels of NR = 32 columns whose u32 lanes hold
//! the k-pairs `(B[2q, j], B[2q+1, j])`; A is read in place when its k-pairs are
//! contiguous (the forward pass and the input gradient) and packed into MR = 12-row panels
//! otherwise (the weight gradient). A 12 x 32 micro-tile keeps 24 accumulators in
//! registers; K is blocked by QC pairs (see [`QC`]).

use core::arch::x86_64::*;
use half::bf16;
use rayon::prelude::*;

/// Rows of a micro-tile (A panel width).
const MR: usize = 12;
/// Columns of a micro-tile (B panel width): two 16-lane f32 registers.
const NR: usize = PANEL;
/// k-pairs per K block: all of BERT-base's hidden (768 = 384 pairs) in one block, so a
/// 768-deep product never spills its accumulators to `scratch`. The B micro-panel
/// (48 KiB) then streams from L2 rather than sitting in L1; on an AMD EPYC (Zen 4, 2
/// cores) `gemm_bench 15` gave 1-3% more GFLOP/s on every BERT-base shape than 128
/// pairs (16 KiB, L1) did, in two alternating runs (768 x 768: 444 / 452 vs 420 / 420).
const QC: usize = 384;

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

/// Columns of a packed B panel, in both kernels (this one's NR, AMX's two 16-column tiles).
pub(super) const PANEL: usize = 32;

/// A B operand (`n` columns x `k`) packed once for any number of products: `[panel][kp][32]`
/// u32 k-pairs, `kp` padded to a multiple of 16 (AMX's tile depth; the `vdpbf16ps` kernel
/// reads only the pairs it needs).
pub struct Packed {
    data: Vec<u32>,
    n: usize,
    k: usize,
    kp: usize,
}

impl Packed {
    /// Packs `b` (`(column, k)` view of `n` x `k`), on rayon's threads.
    pub fn new(b: View, n: usize, k: usize) -> Packed {
        let kp = k.div_ceil(2).next_multiple_of(16);
        Packed { data: pack(b, n, (k, kp), PANEL, true), n, k, kp }
    }
}

/// The B operand of a product: a view, packed by the call, or packed beforehand (its
/// columns from the given one on, a multiple of [`PANEL`]: a block of a packed decoder).
#[derive(Clone, Copy)]
pub enum Operand<'a> {
    View(View),
    Packed(&'a Packed, usize),
}

impl Operand<'_> {
    /// `[panel][stride][32]` panels of `n` x `k` and their pair stride (`≥ kp`): packed
    /// now from a view, or borrowed.
    pub(super) fn panels(&self, n: usize, (k, kp): (usize, usize), parallel: bool) -> (std::borrow::Cow<'_, [u32]>, usize) {
        match *self {
            Operand::View(v) => (pack(v, n, (k, kp), PANEL, parallel).into(), kp),
            Operand::Packed(p, first) => {
                assert!(
                    first % PANEL == 0 && first + n <= p.n && p.k == k && p.kp >= kp,
                    "packed operand {} x {} (pairs {}) used from column {first} as {n} x {k} (pairs {kp})",
                    p.n,
                    p.k,
                    p.kp
                );
                (p.data[first / PANEL * p.kp * PANEL..].into(), p.kp)
            }
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
/// Vectorised when k-pairs are contiguous (`cs == 1`: 16 x 16 transposes) or rows are
/// (`rs == 1`, a transposed operand: two k-rows widened and interleaved, 16 rows at a time).
pub(super) fn pack(v: View, rows: usize, (k, kp): (usize, usize), width: usize, parallel: bool) -> Vec<u32> {
    // Written once, never zeroed first: the pairs below, then the padding (`pad`).
    let len = rows.div_ceil(width) * kp * width;
    let mut out: Vec<u32> = Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    // Tests fill it with NaN pairs first, so that a slot left unwritten shows in a product.
    #[cfg(test)]
    spare.iter_mut().for_each(|x| _ = x.write(0x7fc0_7fc0));
    let avx512 = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vl");
    let by_rows = avx512 && v.rs == 1 && v.cs != 1;
    // Rows per task: a panel, or 16 one-row panels when rows are packed 16 at a time.
    let group = if by_rows && width == 1 { 16 } else { width };
    let pack_group = |(p, dst): (usize, &mut [std::mem::MaybeUninit<u32>])| {
        // SAFETY: u32 has no invalid values, and every element is written below (the real
        // pairs, then the padding) before the vector is read.
        let dst = unsafe { &mut *(dst as *mut [std::mem::MaybeUninit<u32>] as *mut [u32]) };
        let r0 = p * group;
        let n = group.min(rows - r0);
        let mut q0 = 0;
        if avx512 && v.cs == 1 && v.rs % 2 == 0 && width % 16 == 0 && n == width {
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
        } else if by_rows {
            // SAFETY: rows r0..r0+n and pairs 0..k/2 are inside the matrix; `dst` holds
            // them in its layout; the CPU has AVX-512 F/BW/VL (checked above).
            unsafe { pack_rows_contiguous(v, r0, n, k / 2, dst, width, kp) };
            q0 = k / 2;
        }
        for q in q0..k.div_ceil(2) {
            for j in 0..n {
                // Panels of width 1 hold one row each: row j's pairs at j * kp.
                let at = if width == 1 { j * kp + q } else { q * width + j };
                // SAFETY: row r0+j < rows and 2q < k.
                dst[at] = unsafe { v.pair(r0 + j, 2 * q, k) };
            }
        }
        pad(dst, n, (k.div_ceil(2), kp), width);
    };
    if parallel {
        spare.par_chunks_mut(kp * group).enumerate().for_each(pack_group);
    } else {
        spare.chunks_mut(kp * group).enumerate().for_each(pack_group);
    }
    // SAFETY: every group wrote all of its elements (pairs and padding).
    unsafe { out.set_len(len) };
    out
}

/// Zeroes the padding of one packed group of `n` rows whose first `pairs` k-pairs are
/// written: pairs `pairs..kp` of every row, and (panels wider than 1) the columns `n..width`.
fn pad(dst: &mut [u32], n: usize, (pairs, kp): (usize, usize), width: usize) {
    if width == 1 {
        dst.chunks_mut(kp).for_each(|row| row[pairs..].fill(0));
    } else {
        for (q, panel_row) in dst.chunks_mut(width).enumerate() {
            panel_row[if q < pairs { n } else { 0 }..].fill(0);
        }
    }
}

/// `(x[i], x[i + cs])` for `i < len ≤ 16` as u32 lanes (first in the low half), zero past
/// `len`, and the mask of the `len` lanes.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL; `x[..len]` and `x[cs..cs + len]` must be readable.
/// (VL too, for the 256-bit masked loads: without it they were calls, not instructions,
/// 1.4% of a bf16 training step.)
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pairs16(x: *const bf16, cs: usize, len: usize) -> (__m512i, __mmask16) {
    let mask = lanes(len);
    unsafe {
        let lo = _mm256_maskz_loadu_epi16(mask, x as *const _);
        let hi = _mm256_maskz_loadu_epi16(mask, x.add(cs) as *const _);
        (_mm512_or_si512(_mm512_cvtepu16_epi32(lo), _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(hi))), mask)
    }
}

/// The whole pairs `0..pairs` of rows `r0..r0+n` of a matrix whose rows are contiguous
/// (`rs == 1`) into one panel `[kp][width]`: pair `q` of 16 rows is `X[2q, ..]` widened to
/// u32 or'ed with `X[2q+1, ..]` shifted up, one masked store. With `width` 1 (AMX's A,
/// `[row][kp]`), `dst` holds the `n ≤ 16` rows one after another, and 16 x 16 blocks are
/// transposed into them.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL; rows `r0..r0+n` and k `0..2·pairs` must be inside
/// `v`; `dst` must hold `kp ≥ pairs` pairs of `width ≥ n` rows (of `n` rows when `width` is 1).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_rows_contiguous(v: View, r0: usize, n: usize, pairs: usize, dst: &mut [u32], width: usize, kp: usize) {
    // Pairs (2q, 2q+1) of rows j..j+len as 16 u32 lanes (zero past `len`), and their mask.
    // SAFETY (every call): rows r0+j..r0+j+len and k 2q, 2q+1 are inside the matrix (the
    // caller's promise); masked lanes are not read.
    let pairs_of = |q: usize, j: usize, len: usize| unsafe { pairs16(v.ptr.add(r0 + j + 2 * q * v.cs), v.cs, len) };
    unsafe {
        if width == 1 {
            let mut block = [0u32; 256]; // [16 pairs][16 rows]
            for j0 in (0..n).step_by(16) {
                let len = 16.min(n - j0);
                for q0 in (0..pairs).step_by(16) {
                    let qn = 16.min(pairs - q0);
                    for q in 0..16 {
                        let lanes = if q < qn { pairs_of(q0 + q, j0, len).0 } else { _mm512_setzero_si512() };
                        _mm512_storeu_si512(block.as_mut_ptr().add(16 * q) as *mut _, lanes);
                    }
                    let mut rows = [0u32; 256]; // [16 rows][16 pairs]
                    transpose16(block.as_ptr(), 16, rows.as_mut_ptr(), 16);
                    for (j, row) in rows.chunks(16).take(len).enumerate() {
                        dst[(j0 + j) * kp + q0..][..qn].copy_from_slice(&row[..qn]);
                    }
                }
            }
        } else {
            for q in 0..pairs {
                for j in (0..n).step_by(16.min(width)) {
                    let (lanes, mask) = pairs_of(q, j, 16.min(width).min(n - j));
                    _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(q * width + j) as *mut _, mask, lanes);
                }
            }
        }
    }
}

/// One micro-tile over `kp` k-pairs: `acc = (first ? 0 : scratch) + A-tile · B-panel`;
/// then `scratch = acc`, or on the `last` K block the `rows` x `cols` corner of `acc`
/// plus the bias (`bias[j]` for column j, when not null) into `c` (row stride `ldc`;
/// rounded once when bf16). A's pair `(r, q)` is at `a[r * ars + q * aqs]` (rows past `rows` re-read
/// the last row; their results are dropped); B's panel is `[kp][NR]` u32 at `b`; `scratch`
/// holds MR x NR f32.
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
    (c, ldc, bias): (Dst, usize, *const bf16),
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
        let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
        let (b0, b1) = if bias.is_null() {
            (_mm512_setzero_ps(), _mm512_setzero_ps())
        } else {
            (widen(_mm256_maskz_loadu_epi16(m0, bias as *const _)), widen(_mm256_maskz_loadu_epi16(m1, bias.add(16) as *const _)))
        };
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let row = c.add(r * ldc);
            row.put16(_mm512_add_ps(acc[0], b0), m0);
            row.add(16).put16(_mm512_add_ps(acc[1], b1), m1);
        }
    }
}

/// The mask of the first `min(len, 16)` lanes.
#[inline(always)]
fn lanes(len: usize) -> __mmask16 {
    if len >= 16 { 0xffff } else { ((1u32 << len) - 1) as u16 }
}

/// 16 bf16 (as i16 lanes) widened to f32, exactly.
#[inline(always)]
unsafe fn widen(x: __m256i) -> __m512 {
    unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(x))) }
}

/// Where a product's sums go: rounded once to bf16 (the kernels' products), as they are in
/// f32 (attention's scores of bf16 operands), or rounded once to bf16 and then through
/// exact-erf GELU, rounded again (an inference FFN's `gelu(x·Wᵀ + b)`: what PyTorch's
/// bf16 `addmm` followed by `gelu` computes, without writing and re-reading the product);
/// `C[i, j]` at element `i·n + j` from here.
#[derive(Clone, Copy)]
pub enum Dst {
    Bf16(*mut bf16),
    F32(*mut f32),
    Bf16Gelu(*mut bf16),
}
// SAFETY: parallel tasks write disjoint parts of the output.
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

impl Dst {
    /// The destination `i` elements on.
    ///
    /// # Safety
    /// The result must stay inside the output.
    #[inline(always)]
    pub(super) unsafe fn add(self, i: usize) -> Dst {
        unsafe {
            match self {
                Dst::Bf16(p) => Dst::Bf16(p.add(i)),
                Dst::F32(p) => Dst::F32(p.add(i)),
                Dst::Bf16Gelu(p) => Dst::Bf16Gelu(p.add(i)),
            }
        }
    }

    /// The first `len` of 16 sums `y` (`len` the set lanes of `mask`) written here, in the
    /// destination's form.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F/BW/VL and AVX512-BF16; the masked lanes must be
    /// writable.
    #[inline(always)]
    unsafe fn put16(self, y: __m512, mask: __mmask16) {
        unsafe {
            let rounded = |y| core::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(y));
            match self {
                Dst::Bf16(p) => _mm256_mask_storeu_epi16(p as *mut _, mask, rounded(y)),
                Dst::F32(p) => _mm512_mask_storeu_ps(p, mask, y),
                Dst::Bf16Gelu(p) => {
                    let mut z = [0f32; 16];
                    _mm512_storeu_ps(z.as_mut_ptr(), widen(rounded(y)));
                    for z in &mut z {
                        *z = super::gelu::gelu(*z);
                    }
                    _mm256_mask_storeu_epi16(p as *mut _, mask, rounded(_mm512_loadu_ps(z.as_ptr())));
                }
            }
        }
    }

    /// [`Dst::put16`] of one sum, without vector instructions.
    ///
    /// # Safety
    /// `self` must be writable.
    pub(super) unsafe fn put(self, y: f32) {
        unsafe {
            match self {
                Dst::Bf16(p) => p.write(bf16::from_f32(y)),
                Dst::F32(p) => p.write(y),
                Dst::Bf16Gelu(p) => p.write(bf16::from_f32(super::gelu::gelu(bf16::from_f32(y).to_f32()))),
            }
        }
    }

    /// `dst[r·ldc + j] = acc[r·NR + j] + bias[j]` for `r` in `rows`, `j < cols ≤ NR` (no
    /// bias when null): rows of a block of C from its f32 sums `acc` (`[..][NR]`), in the
    /// destination's form: 16 lanes at a time with AVX512-BF16 where the CPU has it
    /// (`vcvtneps2bf16`, which reads denormal sums as zero), else one element at a time (the
    /// AMX driver on the tile model, on CPUs without it).
    ///
    /// # Safety
    /// `self` must be writable at `r·ldc + j` and `bias` (when not null) readable for `cols`
    /// elements; `acc` must hold `rows.end` rows of NR.
    pub(super) unsafe fn store_block(self, acc: &[f32], (rows, cols): (std::ops::Range<usize>, usize), ldc: usize, bias: *const bf16) {
        assert!(cols <= NR && acc.len() >= rows.end * NR, "a block of at most {NR} columns");
        #[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
        unsafe fn vector(dst: Dst, acc: &[f32], (rows, cols): (std::ops::Range<usize>, usize), ldc: usize, bias: *const bf16) {
            unsafe {
                let m = [lanes(cols), lanes(cols.saturating_sub(16))];
                let b = if bias.is_null() {
                    [_mm512_setzero_ps(); 2]
                } else {
                    [widen(_mm256_maskz_loadu_epi16(m[0], bias as *const _)), widen(_mm256_maskz_loadu_epi16(m[1], bias.add(16) as *const _))]
                };
                for r in rows {
                    for h in 0..2 {
                        let y = _mm512_add_ps(_mm512_maskz_loadu_ps(m[h], acc.as_ptr().add(r * NR + 16 * h)), b[h]);
                        dst.add(r * ldc + 16 * h).put16(y, m[h]);
                    }
                }
            }
        }
        unsafe {
            if is_x86_feature_detected!("avx512bf16") && is_x86_feature_detected!("avx512bw") {
                return vector(self, acc, (rows, cols), ldc, bias);
            }
            for r in rows {
                for (j, &v) in acc[r * NR..][..cols].iter().enumerate() {
                    self.add(r * ldc + j).put(v + if bias.is_null() { 0.0 } else { (*bias.add(j)).to_f32() });
                }
            }
        }
    }
}

/// The bias's first element, or null.
pub(super) struct Bias(pub(super) *const bf16);
// SAFETY: only read, while the caller's slice is borrowed.
unsafe impl Send for Bias {}
unsafe impl Sync for Bias {}

/// `C[m, n] = Σ_k A(i, k) · B(j, k) (+ bias[j])` written row-major into `c` (`m * n`
/// elements of bf16 or f32, every one written once, never read); `a` indexes `(row, k)` and `b`
/// `(column, k)`. With `parallel`, column panels are spread over rayon's threads.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL and AVX512-BF16 (level `avx512bf16`); `a`/`b` must
/// address `m` x `k` and `n` x `k` elements, `c` must be writable for `m * n`, and `bias`
/// hold `n` when given.
pub unsafe fn gemm(a: View, b: Operand, (m, n, k): (usize, usize, usize), c: Dst, bias: Option<&[bf16]>, parallel: bool) {
    assert!(m * n * k > 0, "empty products are the caller's (Bf16Matmul)");
    assert!(bias.is_none_or(|b| b.len() == n), "bias of {n} columns");
    let direct = a.cs == 1 && a.rs % 2 == 0 && k % 2 == 0;
    let kp = k.div_ceil(2);
    let pa = if direct { Vec::new() } else { pack(a, m, (k, kp), MR, parallel) };
    let (pb, bkp) = b.panels(n, (k, kp), parallel);
    let (np, mp) = (n.div_ceil(NR), m.div_ceil(MR));
    let bias = Bias(bias.map_or(std::ptr::null(), <[bf16]>::as_ptr));
    // `scratch` is only reserved: each tile's first K block writes it before any reads.
    let panel = |scratch: &mut Vec<f32>, j: usize| {
        let bias = &bias;
        scratch.reserve(mp * MR * NR);
        let cols = NR.min(n - j * NR);
        let bj = if bias.0.is_null() { bias.0 } else { bias.0.wrapping_add(j * NR) };
        for q0 in (0..kp).step_by(QC) {
            let qn = QC.min(kp - q0);
            let bp = pb[(j * bkp + q0) * NR..].as_ptr();
            for i in 0..mp {
                let s = scratch.as_mut_ptr().wrapping_add(i * MR * NR); // inside the reservation
                let flags = (q0 == 0, q0 + qn == kp);
                let shape = (MR.min(m - i * MR), cols);
                // SAFETY: the tile (i, j) is inside C and written by this task only; A rows
                // are clamped to m; the packed panels hold kp pairs; the bias holds the
                // panel's columns.
                unsafe {
                    let cp = (c.add(i * MR * n + j * NR), n, bj);
                    if direct {
                        let ap = (a.row(i * MR) as *const u32).add(q0);
                        kernel(qn, ap, a.rs / 2, 1, bp, s, flags, cp, shape)
                    } else {
                        kernel(qn, pa[(i * kp + q0) * MR..].as_ptr(), 1, MR, bp, s, flags, cp, shape)
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
