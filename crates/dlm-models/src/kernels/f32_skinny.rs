//! f32 products of a few rows against a weight in panels, `y = x · Wᵀ (+ b)`, for x86-64
//! CPUs with AVX-512F. The panels are made from a column-major weight (`Wᵀ [in, out]`
//! contiguous, the layout `ParamBuilder::load_linear` keeps for an f32 inference model)
//! or from a row-major one (a decoder tied to the word embeddings).
//!
//! A cached denoising step (Fast-dLLM's dual cache: a block of 32 positions; a batch of
//! rows' changed positions) and the vocabulary projection of a step's masked positions are
//! products of a few dozen rows against
//! whole weight matrices: every weight is read once per step for a few FLOPs per element,
//! so the weight stream sets the pace. The weight is read in [`Panels`]: [`NR`] columns
//! of `Wᵀ` at a time, each panel's `in` rows of 32 values contiguous, so a product reads
//! every panel front to back. A frozen weight is put in panels once, on its first such
//! product, and kept ([`super::Prepacked`]: a second copy of the weight, in f32); any
//! other weight is put in panels for the one product, [`SLAB`] output columns at a time
//! ([`product_of`]).
//!
//! Each parallel task owns a run of panels and, for each K block of [`KC`] rows of a
//! panel, runs micro-tiles of up to [`MR`] rows x 32 columns, their 2·MR accumulators in
//! registers, starting from the bias (first block) or from the sums the earlier blocks
//! wrote; the block (32 KiB) stays in L1 for the row tiles after the first. The first
//! row tile also prefetches, into L2, the weight [`AHEAD`] values past the block it reads
//! (two blocks on), so the stream from memory runs while the tiles compute.
//!
//! Each output is the bias (or 0) plus `x[i, k] · W[j, k]` for k = 0, 1, … in order, one
//! fused multiply-add each: the same for any number of rows, any thread count and whether
//! the panels were kept or made for the call, and the plain product up to the order of
//! the f32 additions.

use core::arch::x86_64::*;
use rayon::prelude::*;

/// Products of at most this many rows take this kernel over panels made for the call
/// (taller ones pack the weight in the `gemm` crate, which pays off over more rows)...
pub(crate) const MAX_ROWS: usize = 64;
/// ...and of at most this many over a frozen weight's kept panels, which cost nothing per
/// call (taller ones take the `gemm` crate, whose kernel is faster at that height).
pub(crate) const KEPT_MAX_ROWS: usize = 256;
/// Rows of a micro-tile: 24 accumulators, two weight registers.
const MR: usize = 12;
/// Columns of a micro-tile and of a panel: two 16-lane registers.
const NR: usize = 32;
/// Panels per parallel task, at least.
const TASK_PANELS: usize = 8;
/// Rows of `k` per block: a panel's block (32 KiB) stays in L1 for the row tiles after
/// the first.
const KC: usize = 256;
/// How far past the start of the block it reads the first row tile prefetches (f32
/// values: two blocks), within its task's panels.
const AHEAD: usize = 2 * KC * NR;

/// Whether this CPU runs the kernel (AVX-512F, at a kernel level that allows it).
pub(crate) fn available() -> bool {
    use super::Level;
    matches!(super::level(), Level::AmxBf16 | Level::Avx512Bf16 | Level::Avx512)
}

/// Whether a product of `rows` rows takes the kernel on this CPU, over a frozen weight's
/// kept panels (`kept`) or over panels made for it.
pub(crate) fn takes(rows: usize, kept: bool) -> bool {
    rows <= if kept { KEPT_MAX_ROWS } else { MAX_ROWS } && available()
}

/// Columns of a product's output made into panels at a time when no panels are kept
/// ([`product_of`]): the copy holds one slab, not the whole weight (768 MB for XLM-R's
/// decoder).
const SLAB: usize = 4096;

/// A weight's f32 values as a product reads them, `y = x · Wᵀ`: `Wᵀ [k, n]` contiguous
/// (`transposed`: a column-major weight, as `ParamBuilder::load_linear` keeps an f32
/// inference model's) or `W [n, k]` row-major (a trainable weight, a decoder tied to the
/// word embeddings).
#[derive(Clone, Copy)]
pub(crate) struct Weight<'a> {
    pub values: &'a [f32],
    pub transposed: bool,
    /// Inputs (`in`) and outputs (`out`).
    pub k: usize,
    pub n: usize,
}

/// A weight `Wᵀ [k, n]` in panels of [`NR`] columns: panel `p` holds columns
/// `32p .. 32p + 32` as `k` contiguous rows of 32 values (`[⌈n/32⌉, k, 32]`, the last
/// panel's missing columns zero).
pub(crate) struct Panels {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl Panels {
    /// Output columns `c0..c0 + cols` of `w` in panels. Panics when they are not inside it
    /// (a bug in the caller).
    pub fn of(w: Weight, (c0, cols): (usize, usize)) -> Panels {
        assert!(c0 + cols <= w.n, "f32 panels: columns {c0}..{} of {}", c0 + cols, w.n);
        // (`values` is empty when k = 0, whatever c0.)
        if w.transposed { Panels::new(w.values.get(c0..).unwrap_or_default(), (w.k, cols), w.n) } else { Panels::from_rows(&w.values[c0 * w.k..], (cols, w.k)) }
    }

    /// `wt [k, n]` (row stride `ldw` ≥ n; columns `0..n` used) in panels: a column-major
    /// weight's `Wᵀ`. Panics when `wt` does not hold it (a bug in the caller).
    fn new(wt: &[f32], (k, n): (usize, usize), ldw: usize) -> Panels {
        assert!(ldw >= n && (k == 0 || n == 0 || wt.len() >= (k - 1) * ldw + n), "f32 panels: [{k}, {n}] (ldw {ldw}) from {} values", wt.len());
        Panels::fill((k, n), |c0, cols, panel| {
            for (kk, line) in panel.chunks_mut(NR).enumerate() {
                line[..cols].copy_from_slice(&wt[kk * ldw + c0..kk * ldw + c0 + cols]);
            }
        })
    }

    /// `w [n, k]` row-major in panels (the panels of its transpose): a row-major weight's,
    /// such as a decoder tied to the word embeddings. Panics when `w` does not hold it.
    fn from_rows(w: &[f32], (n, k): (usize, usize)) -> Panels {
        assert!(w.len() >= n * k, "f32 panels: [{n}, {k}] from {} values", w.len());
        Panels::fill((k, n), |c0, cols, panel| {
            for c in 0..cols {
                for (kk, &v) in w[(c0 + c) * k..(c0 + c + 1) * k].iter().enumerate() {
                    panel[kk * NR + c] = v;
                }
            }
        })
    }

    /// `[⌈n/32⌉, k, 32]` zeros, each panel filled by `panel(first column, columns, panel)`
    /// (in parallel).
    fn fill((k, n): (usize, usize), panel: impl Fn(usize, usize, &mut [f32]) + Sync) -> Panels {
        let mut data = vec![0f32; n.div_ceil(NR) * k * NR];
        if k > 0 {
            data.par_chunks_mut(k * NR).enumerate().for_each(|(p, values)| panel(p * NR, NR.min(n - p * NR), values));
        }
        Panels { data, k, n }
    }
}

/// `x [m, k]` row-major times columns `first..first + n` of the panelled weight `w`
/// → row-major `[m, n]`, starting from `bias [n]` when given. Panics when the operands do
/// not fit (a bug in the caller: `first` a multiple of [`NR`], the columns inside `w`, `x`
/// holding `m` rows of `w`'s `k`) or the CPU lacks AVX-512F (see [`available`]).
pub(crate) fn product(x: &[f32], m: usize, w: &Panels, (first, n): (usize, usize), bias: Option<&[f32]>) -> Vec<f32> {
    let k = w.k;
    assert!(available(), "f32 skinny product without AVX-512F");
    assert!(x.len() >= m * k && first % NR == 0 && first + n <= w.n, "f32 skinny product: [{m}, {k}] · columns {first}..{} of [{k}, {}]", first + n, w.n);
    assert!(bias.is_none_or(|b| b.len() == n), "f32 skinny product: bias of {} for {n} columns", bias.map_or(0, |b| b.len()));
    if m == 0 || n == 0 || k == 0 {
        let row = bias.map_or_else(|| vec![0f32; n], <[f32]>::to_vec);
        return row.repeat(m);
    }
    // Written once by the tiles' last K blocks, never zeroed first (a fresh 8 MB output
    // of the vocabulary projection costs page faults and a memset otherwise).
    let mut y: Vec<f32> = Vec::with_capacity(m * n);
    let threads = rayon::current_num_threads().max(1);
    let (p0, panels) = (first / NR, n.div_ceil(NR));
    let per_task = panels.div_ceil(4 * threads).max(TASK_PANELS);
    let starts: Vec<usize> = (0..panels).step_by(per_task).collect();
    let out = Out(y.as_mut_ptr());
    starts.par_iter().for_each(|&t0| {
        let t1 = (t0 + per_task).min(panels);
        // The task's panels, front to back: [t1 - t0, k, 32].
        let run = &w.data[(p0 + t0) * k * NR..(p0 + t1) * k * NR];
        for (p, panel) in run.chunks_exact(k * NR).enumerate() {
            let (j, cols) = ((t0 + p) * NR, NR.min(n - (t0 + p) * NR));
            for k0 in (0..k).step_by(KC) {
                let depth = KC.min(k - k0);
                // The first K block starts from the bias (or 0), the others from the sums so far.
                let init = match (k0, bias) {
                    (0, Some(b)) => Init::Bias(b[j..].as_ptr()),
                    (0, None) => Init::Zero,
                    _ => Init::Sums,
                };
                // What the first row tile prefetches: AHEAD values on in the run, if there.
                let at = p * k * NR + k0 * NR + AHEAD;
                let ahead = run.get(at..at + depth * NR).map_or(core::ptr::null(), <[f32]>::as_ptr);
                for i in (0..m).step_by(MR) {
                    let rows = MR.min(m - i);
                    let a = Block { x: x[i * k + k0..].as_ptr(), ldx: k, w: panel[k0 * NR..].as_ptr(), depth };
                    let ahead = if i == 0 { ahead } else { core::ptr::null() };
                    // SAFETY: AVX-512F is present (asserted); rows i..i+rows, k0..k0+depth
                    // of x, the panel's depth rows from k0 and the prefetched values are
                    // inside their slices (asserted above, `run.get`); the task writes
                    // only its own columns of y.
                    unsafe { tile(rows, a, init, out.at(i * n + j), n, cols, ahead) }
                }
            }
        }
    });
    // SAFETY: every (i, j) with i < m, j < n lies in exactly one tile of one task, whose
    // first K block wrote it (k > 0) before any later block read it.
    unsafe { y.set_len(m * n) };
    y
}

/// `x [m, k]` row-major times `w` → row-major `[m, n]` (from `bias [n]` when given), over
/// panels made for this call, [`SLAB`] columns at a time: bitwise [`product`] over the
/// whole weight's panels. Panics as [`product`] does.
pub(crate) fn product_of(x: &[f32], m: usize, w: Weight, bias: Option<&[f32]>) -> Vec<f32> {
    if w.n <= SLAB {
        return product(x, m, &Panels::of(w, (0, w.n)), (0, w.n), bias);
    }
    let mut y = vec![0f32; m * w.n];
    for c0 in (0..w.n).step_by(SLAB) {
        let cols = SLAB.min(w.n - c0);
        let part = product(x, m, &Panels::of(w, (c0, cols)), (0, cols), bias.map(|b| &b[c0..c0 + cols])); // [m, cols]
        for (yr, pr) in y.chunks_mut(w.n).zip(part.chunks(cols)) {
            yr[c0..c0 + cols].copy_from_slice(pr);
        }
    }
    y
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
/// same `depth` rows of a panel (32 contiguous values each) from `w`.
#[derive(Clone, Copy)]
struct Block {
    x: *const f32,
    ldx: usize,
    w: *const f32,
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
/// dispatched to its row count; `ahead`, unless null: `a.depth` rows of 32 values to
/// prefetch into L2 meanwhile.
///
/// # Safety
/// AVX-512F; `a` addresses `rows` rows of x and a panel's 32 columns over its depth,
/// a bias `cols` values, `y` `rows` rows of `cols` (stride `ldy`).
unsafe fn tile(rows: usize, a: Block, init: Init, y: *mut f32, ldy: usize, cols: usize, ahead: *const f32) {
    macro_rules! by_rows {
        ($($r:literal)*) => {
            match rows {
                $($r => unsafe { micro::<$r>(a, init, y, ldy, cols, ahead) },)*
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
unsafe fn micro<const R: usize>(a: Block, init: Init, y: *mut f32, ldy: usize, cols: usize, ahead: *const f32) {
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
            if !ahead.is_null() {
                // The two lines of a later row of the weight, into L2 (a hint).
                _mm_prefetch::<_MM_HINT_T1>(ahead.add(kk * NR) as *const i8);
                _mm_prefetch::<_MM_HINT_T1>(ahead.add(kk * NR + 16) as *const i8);
            }
            // A panel's row: 32 values (zero past the weight's last column).
            let line = a.w.add(kk * NR);
            let w0 = _mm512_loadu_ps(line);
            let w1 = _mm512_loadu_ps(line.add(16));
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

    /// Row counts across the tile sizes, column ranges with partial panels and tasks, K
    /// across several blocks (the prefetch on and off), a wider row stride of `Wᵀ` (a
    /// block of a weight), against an f64 triple loop.
    #[test]
    fn products_equal_the_definition() {
        if !available() {
            eprintln!("skipped: this CPU (kernel level {}) has no AVX-512F", super::super::level());
            return;
        }
        // An empty contraction is the bias.
        assert_eq!(product(&[], 2, &Panels::new(&[], (0, 3), 3), (0, 3), Some(&[1.0, 2.0, 3.0])), [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        let k = 700;
        // (rows, columns of W, its row stride, the product's first column and width)
        for (m, n, ldw, (first, width)) in [(0, 5, 5, (0, 5)), (3, 0, 4, (0, 0)), (1, 5, 5, (0, 5)), (12, 32, 40, (0, 32)), (13, 33, 33, (32, 1)), (32, 300, 301, (64, 236)), (64, 17, 17, (0, 17)), (7, 1000, 1024, (0, 1000)), (5, 9000, 9000, (4096, 4904))] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let wt: Vec<f32> = (0..k * ldw).map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0).collect();
            let bias: Vec<f32> = (0..width).map(|j| j as f32 / 7.0).collect();
            let panels = Panels::new(&wt, (k, n), ldw);
            for with_bias in [false, true] {
                let y = product(&x, m, &panels, (first, width), with_bias.then_some(&bias[..]));
                for i in 0..m {
                    for j in 0..width {
                        let dot: f64 = (0..k).map(|l| x[i * k + l] as f64 * wt[l * ldw + first + j] as f64).sum();
                        let want = dot + if with_bias { bias[j] as f64 } else { 0.0 };
                        assert!((y[i * width + j] as f64 - want).abs() < 1e-5 * want.abs().max(10.0), "[{m}, {n}] ({i}, {j}): {} vs {want}", y[i * width + j]);
                    }
                }
            }
        }
    }

    /// A row-major weight's panels are the panels of its transpose, value for value, whole
    /// and for a range of output columns.
    #[test]
    fn panels_of_rows_are_the_panels_of_the_transpose() {
        for (n, k) in [(0, 3), (5, 0), (1, 1), (33, 7), (70, 300)] {
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0).collect();
            let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect(); // [k, n]
            let (rows, cols) = (Weight { values: &w, transposed: false, k, n }, Weight { values: &wt, transposed: true, k, n });
            for range in [(0, n), (n / 3, n - n / 3)] {
                let (a, b) = (Panels::of(rows, range), Panels::of(cols, range));
                assert_eq!((a.k, a.n), (b.k, b.n));
                assert_eq!(a.data, b.data, "[{n}, {k}] columns {range:?}");
            }
        }
    }

    /// Panels made slab by slab for a call give bitwise the product over the whole
    /// weight's panels, with and without bias, both layouts, across slabs.
    #[test]
    fn slab_products_equal_the_whole_weights() {
        if !available() {
            eprintln!("skipped: this CPU (kernel level {}) has no AVX-512F", super::super::level());
            return;
        }
        let (m, k, n) = (3, 40, 2 * SLAB + 70);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0).collect();
        let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 / 1000.0).collect();
        for weight in [Weight { values: &w, transposed: false, k, n }, Weight { values: &wt, transposed: true, k, n }] {
            let whole = Panels::of(weight, (0, n));
            for b in [None, Some(&bias[..])] {
                assert_eq!(product_of(&x, m, weight, b), product(&x, m, &whole, (0, n), b), "transposed {}", weight.transposed);
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
        let (m, k, n) = (29, 600, 130);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let wt: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0).collect();
        let panels = Panels::new(&wt, (k, n), n);
        let all = product(&x, m, &panels, (0, n), None);
        for i in [0, 11, 12, 28] {
            assert_eq!(product(&x[i * k..(i + 1) * k], 1, &panels, (0, n), None), all[i * n..(i + 1) * n], "row {i}");
        }
    }
}
