//! A bf16 GEMM on AMX tiles: `C = A · B` with bf16 inputs, f32 accumulation inside the
//! tiles (`TDPBF16PS`) and one round-to-nearest-even to bf16 at the end — the semantics
//! of `bf16_gemm`, on the same strided [`View`]s, so the same custom op runs either.
//!
//! Tiles: a 32 x 32 block of C lives in four f32 tiles (tmm0-3); each step loads two A
//! tiles (tmm4-5: 16 rows x 16 k-pairs) and two B tiles (tmm6-7: 16 k-pairs x 16 columns)
//! and issues four `TDPBF16PS`. B is packed once per call into 32-column VNNI panels,
//! `[panel][k-pair][32 columns]` u32 holding `(B[2q, j], B[2q+1, j])` (the `bf16_gemm`
//! packing), with the k-pairs zero-padded to a multiple of 16. A is read in place when its
//! k-pairs are contiguous and K is a multiple of 32; other rows (the last partial block, or
//! all of them) are packed as `[row][k-pair]` u32, zero-padded to whole tiles. Zero padding
//! makes every tile full, so one configuration serves all shapes.
//!
//! Cache blocking ([`Blocking`]): rows of A in groups that fit in L2, and column panels in
//! runs that fit in L2 beside them, the runs spread over rayon's threads (each configures
//! its own tiles). K is never cut: a 32 x 32 block's four C tiles are stored once, when
//! done. (Cutting K so that a block's panel fits in L1 gained nothing once the operands
//! started on cache lines, and cost a store and a reload of the C tiles per cut.)

pub(super) mod self_test;
#[cfg(test)]
pub(super) mod tile_model;
mod tiles;

use super::bf16_gemm::{Bias, Dst, Operand, PANEL, View, pack};
use half::bf16;
use rayon::prelude::*;
#[cfg(test)]
pub(super) use tiles::CONFIG;
use tiles::{AmxTiles, ROW_BYTES, ROWS, Tiles};

/// Rows of a C block: two A tiles.
const MB: usize = 2 * ROWS;
/// Columns of a C block: two B tiles of 16 f32 columns.
const NB: usize = PANEL;
const _: () = assert!(NB == 2 * ROW_BYTES / 4, "a B panel is two tiles wide");
/// k-pairs per step: one tile row of A.
const KS: usize = ROW_BYTES / 4;
/// Bytes of A one row group may hold (half of the 2 MiB L2 of Sapphire/Emerald/Granite
/// Rapids cores): every run of column panels reads the whole group.
const A_GROUP_BYTES: usize = 1 << 20;
/// Bytes of B one run of column panels may hold: the run is read once per 32-row block
/// of A, so it should stay in L2 beside A's group.
const B_RUN_BYTES: usize = 768 << 10;

/// Rows of A per L2 group (a multiple of 32) and column panels per run.
#[derive(Clone, Copy, Debug)]
pub(super) struct Blocking {
    rows: usize,
    panels: usize,
}

impl Blocking {
    /// The blocking for `kp` padded k-pairs and `panels` column panels over `threads`:
    /// as many rows of A as [`A_GROUP_BYTES`] hold (at least one 32-row block); runs of
    /// panels that fit in [`B_RUN_BYTES`], at least one run per thread, of equal length.
    fn for_shape(kp: usize, panels: usize, threads: usize) -> Blocking {
        let rows = (A_GROUP_BYTES / (kp * 4) / MB * MB).max(MB);
        let fit = (B_RUN_BYTES / (kp * 4 * NB)).max(1);
        let runs = panels.div_ceil(fit).next_multiple_of(threads.max(1)).min(panels);
        Blocking { rows, panels: panels.div_ceil(runs) }
    }

    /// Given block sizes (tests: any blocking must give bitwise the same product).
    #[cfg(test)]
    pub(super) fn new(rows: usize, panels: usize) -> Blocking {
        assert!(rows.is_multiple_of(MB) && panels > 0, "groups of 32-row blocks, runs of panels");
        Blocking { rows, panels }
    }
}

/// `C[m, n] = Σ_k A(i, k) · B(j, k) (+ bias[j])` on the AMX tiles, as
/// [`super::bf16_gemm::gemm`].
///
/// # Safety
/// The kernel level must be `amx` (CPU support and the OS's tile permission); `a`/`b`,
/// `c` and `bias` as for [`super::bf16_gemm::gemm`].
pub unsafe fn gemm(a: View, b: Operand, dims: (usize, usize, usize), c: Dst, bias: Option<&[bf16]>, parallel: bool) {
    // SAFETY: as the caller promised; each task owns its thread's tiles while it runs.
    unsafe { gemm_on(|| AmxTiles::new(), None, a, b, dims, c, bias, parallel) }
}

/// The driver over any tile backend; `tiles` configures a fresh set on the calling thread;
/// `blocking` overrides [`Blocking::for_shape`].
///
/// Loop order: row groups of A (in L2) one after another; in each, runs of column panels
/// (in L2) spread over the threads; in a run, each 32-row block of A meets every panel of
/// the run, over the whole of K at once (the four C tiles are stored once, when done).
/// All operands must start on 64-byte lines to run at speed: the binaries' allocator
/// ([`crate::allocator::KeepLarge`]) sees to it.
///
/// # Safety
/// `tiles()` must be safe to call on any rayon thread; the rest as in [`gemm`].
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_on<T: Tiles>(
    tiles: impl Fn() -> T + Sync,
    blocking: Option<Blocking>,
    a: View,
    b: Operand,
    (m, n, k): (usize, usize, usize),
    c: Dst,
    bias: Option<&[bf16]>,
    parallel: bool,
) {
    assert!(m * n * k > 0, "empty products are the caller's (Bf16Matmul)");
    assert!(bias.is_none_or(|b| b.len() == n), "bias of {n} columns");
    let kp = k.div_ceil(2).next_multiple_of(KS); // padded k-pairs
    let panels = n.div_ceil(NB);
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    let Blocking { rows: mc, panels: nc } = blocking.unwrap_or(Blocking::for_shape(kp, panels, threads));
    let direct = a.cs == 1 && k % (2 * KS) == 0;
    let mfull = if direct { m / MB * MB } else { 0 };
    let rest = View {
        ptr: a.ptr.wrapping_add(mfull * a.rs),
        ..a
    };
    let mut pa = pack(rest, m - mfull, (k, kp), 1, parallel); // [row][kp]
    pa.resize((m - mfull).next_multiple_of(MB) * kp, 0);
    let (pb, bkp) = b.panels(n, (k, kp), parallel); // [panel][bkp][NB]
    let bias = Bias(bias.map_or(std::ptr::null(), <[bf16]>::as_ptr));
    // Panels j0..j1 over rows m0..m1; `t` are the calling thread's tiles, configured once
    // per run (a run never yields to another rayon job, which could release them);
    // `scratch` holds two blocks' C tiles ([2][MB][NB] f32): the block being summed, and
    // the one before it, whose rows are written to C (rounded, with the bias, through the
    // epilogue) a few at a time between the product steps of the next, so that this
    // vector work runs while the tiles work (the C tiles can only be stored once a block's
    // last product is done).
    let run = |(t, scratch): &mut (T, Vec<f32>), ((j0, j1), (m0, m1)): ((usize, usize), (usize, usize))| {
        let bias = &bias;
        let (bstride, cstride) = (NB * 4, NB * 4);
        scratch.resize(2 * MB * NB, 0.0);
        let per_step = MB.div_ceil(kp / KS); // rows of the last block written per step
        // Rows `rows` of block (r0, j), summed in half `h` of the scratch, written to C.
        let write = |scratch: &[f32], (h, r0, j): (usize, usize, usize), rows: std::ops::Range<usize>| {
            let rows = rows.start.min(m - r0)..rows.end.min(m - r0);
            if rows.is_empty() {
                return;
            }
            let cols = NB.min(n - j * NB);
            let bj = if bias.0.is_null() { bias.0 } else { bias.0.wrapping_add(j * NB) };
            // SAFETY: rows r0.., columns j*NB..j*NB+cols of C belong to this task only; the
            // bias holds those columns; the scratch's half h holds the block's MB rows.
            unsafe { c.add(r0 * n + j * NB).store_block(&scratch[h * MB * NB..], (rows, cols), n, bj) };
        };
        let mut last: Option<(usize, usize, usize)> = None; // (half, r0, j) of the block before
        for r0 in (m0..m1).step_by(MB) {
            let (ap, astride) = if r0 < mfull {
                // SAFETY: r0 < mfull ≤ m is a row of A.
                (unsafe { a.row(r0) } as *const u8, a.rs * 2)
            } else {
                (pa[(r0 - mfull) * kp..].as_ptr() as *const u8, kp * 4)
            };
            for j in j0..j1 {
                let bp = pb[j * bkp * NB..].as_ptr() as *const u8;
                let h = last.map_or(0, |(h, _, _)| 1 - h);
                // SAFETY: A tiles read rows r0..r0+32 (inside A, or the zero-padded pack)
                // and pairs q..q+16 < kp of them (K is whole tiles when direct); B tiles
                // read pairs q..q+16 of this panel.
                unsafe {
                    t.zero::<0>();
                    t.zero::<1>();
                    t.zero::<2>();
                    t.zero::<3>();
                    // Each A and B tile is loaded just before its first product, so that
                    // the products start while the later loads are in flight (loading all
                    // four first was 5-13% slower on three of BERT-base's four shapes in
                    // `gemm_bench` on an AMX Xeon VM, docs/performance.md).
                    for (step, q) in (0..kp).step_by(KS).enumerate() {
                        t.load::<4>(ap.add(q * 4), astride);
                        t.load::<6>(bp.add(q * bstride), bstride);
                        t.dot_bf16::<0, 4, 6>();
                        t.load::<7>(bp.add(q * bstride + ROW_BYTES), bstride);
                        t.dot_bf16::<1, 4, 7>();
                        t.load::<5>(ap.add(ROWS * astride + q * 4), astride);
                        t.dot_bf16::<2, 5, 6>();
                        t.dot_bf16::<3, 5, 7>();
                        if let Some(before) = last.filter(|_| step * per_step < MB) {
                            write(scratch, before, step * per_step..((step + 1) * per_step).min(MB));
                        }
                    }
                }
                let acc = scratch[h * MB * NB..].as_mut_ptr() as *mut u8; // [MB][NB] f32
                // SAFETY: the C tiles store the block's MB x NB f32 to its half of `scratch`,
                // whose rows were all written to C above.
                unsafe {
                    t.store::<0>(acc, cstride);
                    t.store::<1>(acc.add(ROW_BYTES), cstride);
                    t.store::<2>(acc.add(ROWS * cstride), cstride);
                    t.store::<3>(acc.add(ROWS * cstride + ROW_BYTES), cstride);
                }
                last = Some((h, r0, j));
            }
        }
        if let Some(before) = last {
            write(scratch, before, 0..MB);
        }
    };
    let runs: Vec<(usize, usize)> = (0..panels).step_by(nc).map(|j0| (j0, panels.min(j0 + nc))).collect();
    let init = || (tiles(), Vec::new());
    for m0 in (0..m).step_by(mc) {
        let rows = (m0, m.min(m0 + mc));
        if parallel {
            runs.par_iter().map(|&r| (r, rows)).for_each_init(init, run);
        } else {
            let mut state = init();
            runs.iter().for_each(|&r| run(&mut state, (r, rows)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tile_model::TileModel;
    use super::*;

    /// bf16 values in [-1, 1) from a fixed pattern.
    fn pattern(len: usize, seed: usize) -> Vec<bf16> {
        (0..len).map(|i| bf16::from_f32(((i * 7919 + seed * 104729) % 1000) as f32 / 500.0 - 1.0)).collect()
    }

    /// The driver on the tile model with the given blocking.
    fn product(blocking: Option<Blocking>, a: View, b: View, (m, n, k): (usize, usize, usize), bias: Option<&[bf16]>) -> Vec<bf16> {
        let mut c = vec![bf16::NAN; m * n];
        // SAFETY: the views address m x k and n x k elements of live vectors; c holds m * n.
        unsafe { gemm_on(|| TileModel::new(&CONFIG), blocking, a, Operand::View(b), (m, n, k), Dst::Bf16(c.as_mut_ptr()), bias, true) };
        c
    }

    /// Row groups and runs of panels give bitwise the product of one group and one run,
    /// with A read in place and packed.
    #[test]
    fn blocks_give_bitwise_the_unblocked_product() {
        for (m, k, n) in [(100, 192, 70), (70, 70, 33), (33, 256, 32)] {
            let (av, bv, bias) = (pattern(m * k, 1), pattern(n * k, 2), pattern(n, 3));
            let b = View { ptr: bv.as_ptr(), rs: k, cs: 1 };
            let rows = View { ptr: av.as_ptr(), rs: k, cs: 1 }; // in place when k % 32 == 0
            let cols = View { ptr: av.as_ptr(), rs: 1, cs: m }; // a transposed A: packed
            for a in [rows, cols] {
                let whole = Blocking::new(m.next_multiple_of(MB), n.div_ceil(NB));
                let one = product(Some(whole), a, b, (m, n, k), Some(&bias));
                assert!(one.iter().all(|x| x.is_finite()), "every element written");
                let blockings = [None, Some(Blocking::new(MB, 1)), Some(Blocking::new(2 * MB, 2)), Some(Blocking::new(MB, 3))];
                for blocking in blockings {
                    let blocked = product(blocking, a, b, (m, n, k), Some(&bias));
                    let same = one.iter().zip(&blocked).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{m}x{k}x{n}, a rs {}, {blocking:?}", a.rs);
                }
            }
        }
    }

    /// On a CPU with AMX, the real tiles give the tile model's products up to the order of
    /// the f32 additions inside `TDPBF16PS` (the hardware's sums differ from the SDM's
    /// pseudo-code in the last bits: measured on a Xeon, up to 1e-5 relative where the sum
    /// cancels), and other blockings give bitwise the same sums, as on the model; elsewhere
    /// the test says it skipped.
    #[test]
    fn the_tiles_give_the_models_product() {
        use super::super::dispatch::{Level, level};
        if level() != Level::AmxBf16 {
            println!("skipped: the real AMX kernel (the level here is {})", level());
            return;
        }
        for (m, k, n) in [(100, 192, 70), (70, 70, 33), (33, 256, 32), (128, 768, 96), (40, 3072, 48)] {
            let (av, bv, bias) = (pattern(m * k, 4), pattern(n * k, 5), pattern(n, 6));
            let b = View { ptr: bv.as_ptr(), rs: k, cs: 1 };
            // Σ|a·b| per element: the scale of the f32 sums' rounding.
            let scale: Vec<f64> = (0..m * n)
                .map(|e| (0..k).map(|l| (av[e / n * k + l].to_f64() * bv[e % n * k + l].to_f64()).abs()).sum())
                .collect();
            for (a, name) in [(View { ptr: av.as_ptr(), rs: k, cs: 1 }, "in place"), (View { ptr: av.as_ptr(), rs: 1, cs: m }, "packed")] {
                let on = |blocking: Option<Blocking>, model: bool| {
                    let mut c = vec![f32::NAN; m * n];
                    let dst = Dst::F32(c.as_mut_ptr());
                    // SAFETY: the level is amx; the views address m x k and n x k elements of
                    // live vectors; `c` holds m * n.
                    unsafe {
                        if model {
                            gemm_on(|| TileModel::new(&CONFIG), blocking, a, Operand::View(b), (m, n, k), dst, Some(&bias), true)
                        } else {
                            gemm_on(|| AmxTiles::new(), blocking, a, Operand::View(b), (m, n, k), dst, Some(&bias), true)
                        }
                    }
                    c
                };
                let (tiles, model) = (on(None, false), on(None, true));
                for (e, (x, y)) in tiles.iter().zip(&model).enumerate() {
                    let close = ((x - y).abs() as f64) <= 1e-6 * scale[e] + 1e-6;
                    assert!(close, "{m}x{k}x{n} {name}: C[{}, {}] = {x} on the tiles, {y} on the model", e / n, e % n);
                }
                let blocked = on(Some(Blocking::new(MB, 2)), false);
                assert!(tiles.iter().zip(&blocked).all(|(x, y)| x.to_bits() == y.to_bits()), "{m}x{k}x{n} {name}: blocks");
            }
        }
    }

    /// A's row group fits in 1 MiB; runs of panels fit in 768 KiB, one run per thread at
    /// least, of equal length.
    #[test]
    fn blocking_follows_the_caches() {
        let b = Blocking::for_shape(384, 96, 2); // K = 768, N = 3072: 48 KiB panels
        assert_eq!((b.rows, b.panels), (672, 16)); // 6 runs of 16
        let b = Blocking::for_shape(384, 24, 2); // N = 768: 2 runs of 12, not 16 + 8
        assert_eq!((b.rows, b.panels), (672, 12));
        let b = Blocking::for_shape(1536, 24, 2); // K = 3072: 192 KiB panels
        assert_eq!((b.rows, b.panels), (160, 4));
        assert_eq!(Blocking::for_shape(1536, 3, 4).panels, 1); // fewer panels than threads
        assert_eq!(Blocking::for_shape(1 << 20, 1, 1).rows, MB);
    }
}
