//! f32 products of a few rows against a column-major weight, `y = x · Wᵀ (+ b)` with
//! `Wᵀ [in, out]` contiguous (the layout `ParamBuilder::load_linear` keeps for an f32
//! inference model), for x86-64 CPUs with AVX-512F.
//!
//! A cached denoising step (Fast-dLLM's dual cache: a block of 32 positions) and the
//! vocabulary projection of a step's masked positions are products of 1–64 rows against
//! whole weight matrices: every weight is read once per step for a few FLOPs per element.
//! The general `gemm` crate packs the weight for every such product. Here each parallel
//! task copies blocks of [`KC`] rows x [`SPAN`] columns of `Wᵀ` into a contiguous buffer
//! (prefetching [`AHEAD`] rows ahead of the copy): independent sequential reads, where
//! micro-tiles reading the rows of `Wᵀ` in place stall on far-apart lines. Micro-tiles of
//! up to [`MR`] rows x 32 columns then run over the block with their 2·MR accumulators in
//! registers, starting from the bias (first block) or from the sums the earlier blocks
//! wrote; a block is read from L2 by every row tile after the first. Tasks own disjoint
//! columns and are spread over rayon's threads. No copy of the weight is kept between
//! products, only each thread's 256 KiB block buffer.
//!
//! Each output is the bias (or 0) plus `x[i, k] · W[j, k]` for k = 0, 1, … in order, one
//! fused multiply-add each: the same for any number of rows and any thread count, and the
//! plain product up to the order of the f32 additions.

use core::arch::x86_64::*;
use rayon::prelude::*;

/// Products of at most this many rows take this kernel (taller ones pack the weight and
/// pay for it: the `gemm` crate).
pub(crate) const MAX_ROWS: usize = 64;
/// Rows of a micro-tile: 24 accumulators, two weight registers.
const MR: usize = 12;
/// Columns of a micro-tile and of a panel: two 16-lane registers.
const NR: usize = 32;
/// Output columns per parallel task, at least.
const TASK_COLUMNS: usize = 8 * NR;
/// Columns whose K blocks run together: 1 KiB of each row of `Wᵀ`, so the lines a
/// block reads lie in few pages (the LM head's rows of `Wᵀ` are 0.5 MB apart).
const SPAN: usize = 8 * NR;
/// Rows of `k` per block: a block of [`SPAN`] columns (256 KiB) stays in L2 for the
/// row tiles after the first.
const KC: usize = 256;
/// Rows of `Wᵀ` ahead of the copy whose lines are prefetched.
const AHEAD: usize = 2;

/// Whether this CPU runs the kernel (AVX-512F, at a kernel level that allows it).
pub(crate) fn available() -> bool {
    use super::Level;
    matches!(super::level(), Level::AmxBf16 | Level::Avx512Bf16 | Level::Avx512)
}

/// `x [m, k]` row-major times `wt [k, n]` (row stride `ldw` ≥ n; columns `0..n` used) →
/// row-major `[m, n]`, starting from `bias [n]` when given. Panics when the slices do not
/// hold the operands (a bug in the caller) or the CPU lacks AVX-512F (see [`available`]).
pub(crate) fn product(x: &[f32], (m, k, n): (usize, usize, usize), wt: &[f32], ldw: usize, bias: Option<&[f32]>) -> Vec<f32> {
    assert!(available(), "f32 skinny product without AVX-512F");
    assert!(x.len() >= m * k && ldw >= n && (k == 0 || wt.len() >= (k - 1) * ldw + n), "f32 skinny product: operands do not fit [{m}, {k}] · [{k}, {n}] (ldw {ldw})");
    assert!(bias.is_none_or(|b| b.len() == n), "f32 skinny product: bias of {} for {n} columns", bias.map_or(0, |b| b.len()));
    if m == 0 || n == 0 || k == 0 {
        let row = bias.map_or_else(|| vec![0f32; n], <[f32]>::to_vec);
        return row.repeat(m);
    }
    // Written once by the tiles' last K blocks, never zeroed first (a fresh 8 MB output
    // of the vocabulary projection costs page faults and a memset otherwise).
    let mut y: Vec<f32> = Vec::with_capacity(m * n);
    let threads = rayon::current_num_threads().max(1);
    let per_task = n.div_ceil(4 * threads).next_multiple_of(NR).max(TASK_COLUMNS);
    let starts: Vec<usize> = (0..n).step_by(per_task).collect();
    let out = Out(y.as_mut_ptr());
    starts.par_iter().for_each(|&c0| BLOCK.with_borrow_mut(|block| {
        let c1 = (c0 + per_task).min(n);
        // The thread's block buffer, allocated once (its old contents are never read:
        // every row copy writes the columns the tiles then read).
        block.resize(KC * SPAN, 0.0);
        for s0 in (c0..c1).step_by(SPAN) {
            let width = SPAN.min(c1 - s0);
            for k0 in (0..k).step_by(KC) {
                let depth = KC.min(k - k0);
                // The block's rows of Wᵀ, copied contiguous: independent sequential reads
                // the CPU keeps many of in flight, where the tiles' strided ones stall.
                for (kk, dst) in block.chunks_mut(SPAN).take(depth).enumerate() {
                    if kk + AHEAD < depth {
                        let ahead = (k0 + kk + AHEAD) * ldw + s0;
                        for line in (ahead..ahead + width).step_by(16) {
                            // SAFETY: a hint; the address is inside wt.
                            unsafe { _mm_prefetch::<_MM_HINT_T0>(wt.as_ptr().add(line) as *const i8) };
                        }
                    }
                    let row = (k0 + kk) * ldw + s0;
                    dst[..width].copy_from_slice(&wt[row..row + width]);
                }
                for j in (0..width).step_by(NR) {
                    let cols = NR.min(width - j);
                    // The first K block starts from the bias (or 0), the others from the sums so far.
                    let init = match (k0, bias) {
                        (0, Some(b)) => Init::Bias(b[s0 + j..].as_ptr()),
                        (0, None) => Init::Zero,
                        _ => Init::Sums,
                    };
                    for i in (0..m).step_by(MR) {
                        let rows = MR.min(m - i);
                        let a = Block { x: x[i * k + k0..].as_ptr(), ldx: k, w: block[j..].as_ptr(), ldw: SPAN, depth };
                        // SAFETY: AVX-512F is present (asserted); rows i..i+rows, k0..k0+depth
                        // of x and the block's depth rows, columns j..j+cols are inside
                        // their slices (asserted above); the task writes only its own
                        // columns c0..c1 of y.
                        unsafe { tile(rows, a, init, out.at(i * n + s0 + j), n, cols) }
                    }
                }
            }
        }
    }));
    // SAFETY: every (i, j) with i < m, j < n lies in exactly one tile of one task, whose
    // first K block wrote it (k > 0) before any later block read it.
    unsafe { y.set_len(m * n) };
    y
}

thread_local! {
    /// Each thread's copy of the current block of `Wᵀ`, [`KC`] x [`SPAN`].
    static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The output's pointer, shared by tasks that write disjoint columns.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write disjoint elements through it while `product` owns the vector.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the callers stay inside the vector (see `product`).
        unsafe { self.0.add(offset) }
    }
}

/// A K block of the operands: `depth` columns of x's rows (stride `ldx`) from `x`, the
/// same `depth` rows of `Wᵀ` (stride `ldw`) from `w`.
#[derive(Clone, Copy)]
struct Block {
    x: *const f32,
    ldx: usize,
    w: *const f32,
    ldw: usize,
    depth: usize,
}

/// What a tile's sums start from.
#[derive(Clone, Copy)]
enum Init {
    Zero,
    /// The bias of the tile's columns.
    Bias(*const f32),
    /// The tile's output (an earlier K block's sums).
    Sums,
}

/// One micro-tile of `rows` ≤ [`MR`] rows and `cols` ≤ [`NR`] columns over one K block,
/// dispatched to its row count.
///
/// # Safety
/// AVX-512F; `a` addresses `rows` rows of x and `cols` columns of `Wᵀ` over its depth,
/// a bias `cols` values, `y` `rows` rows of `cols` (stride `ldy`).
unsafe fn tile(rows: usize, a: Block, init: Init, y: *mut f32, ldy: usize, cols: usize) {
    macro_rules! by_rows {
        ($($r:literal)*) => {
            match rows {
                $($r => unsafe { micro::<$r>(a, init, y, ldy, cols) },)*
                _ => unreachable!("a tile has 1 to {MR} rows"),
            }
        };
    }
    by_rows!(1 2 3 4 5 6 7 8 9 10 11 12)
}

/// [`tile`] for `R` rows: accumulators in registers over the whole K block.
///
/// # Safety
/// As [`tile`].
#[target_feature(enable = "avx512f")]
unsafe fn micro<const R: usize>(a: Block, init: Init, y: *mut f32, ldy: usize, cols: usize) {
    let lanes = |c: usize| -> __mmask16 { if c >= 16 { 0xffff } else { (1u32 << c) as u16 - 1 } };
    let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
    unsafe {
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        for r in 0..R {
            let from = match init {
                Init::Zero => continue,
                Init::Bias(b) => b,
                Init::Sums => y.add(r * ldy),
            };
            acc0[r] = _mm512_maskz_loadu_ps(m0, from);
            acc1[r] = _mm512_maskz_loadu_ps(m1, from.add(16));
        }
        for kk in 0..a.depth {
            let line = a.w.add(kk * a.ldw);
            let w0 = _mm512_maskz_loadu_ps(m0, line);
            let w1 = _mm512_maskz_loadu_ps(m1, line.add(16));
            for r in 0..R {
                let xr = _mm512_set1_ps(*a.x.add(r * a.ldx + kk));
                acc0[r] = _mm512_fmadd_ps(xr, w0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(xr, w1, acc1[r]);
            }
        }
        for r in 0..R {
            _mm512_mask_storeu_ps(y.add(r * ldy), m0, acc0[r]);
            _mm512_mask_storeu_ps(y.add(r * ldy + 16), m1, acc1[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row counts across the tile sizes and column counts with partial panels and tasks,
    /// against an f64 triple loop; a wider row stride of `Wᵀ` (a block of a weight).
    #[test]
    fn products_equal_the_definition() {
        if !available() {
            eprintln!("skipped: this CPU (kernel level {}) has no AVX-512F", super::super::level());
            return;
        }
        // An empty contraction is the bias.
        assert_eq!(product(&[], (2, 0, 3), &[], 3, Some(&[1.0, 2.0, 3.0])), [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        let k = 300;
        for (m, n, ldw) in [(0, 5, 5), (3, 0, 4), (1, 5, 5), (12, 32, 40), (13, 33, 33), (32, 300, 301), (64, 17, 17), (7, 1000, 1024)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let wt: Vec<f32> = (0..k * ldw).map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 / 7.0).collect();
            for with_bias in [false, true] {
                let y = product(&x, (m, k, n), &wt, ldw, with_bias.then_some(&bias[..]));
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k).map(|l| x[i * k + l] as f64 * wt[l * ldw + j] as f64).sum();
                        let want = dot + if with_bias { bias[j] as f64 } else { 0.0 };
                        assert!((y[i * n + j] as f64 - want).abs() < 1e-5 * want.abs().max(10.0), "[{m}, {n}] ({i}, {j}): {} vs {want}", y[i * n + j]);
                    }
                }
            }
        }
    }

    /// A row's outputs do not depend on how many rows share the product.
    #[test]
    fn a_row_is_the_same_in_any_product() {
        if !available() {
            eprintln!("skipped: this CPU (kernel level {}) has no AVX-512F", super::super::level());
            return;
        }
        let (m, k, n) = (29, 200, 130);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let wt: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0).collect();
        let all = product(&x, (m, k, n), &wt, n, None);
        for i in [0, 11, 12, 28] {
            assert_eq!(product(&x[i * k..(i + 1) * k], (1, k, n), &wt, n, None), all[i * n..(i + 1) * n], "row {i}");
        }
    }
}

