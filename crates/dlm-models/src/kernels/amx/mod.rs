//! A bf16 GEMM on AMX tiles: `C = A · B` with bf16 inputs, f32 accumulation inside the
//! tiles (`TDPBF16PS`) and one round-to-nearest-even to bf16 at the end — the semantics
//! of `bf16_gemm`, on the same strided [`View`]s, so the same custom op runs either.
//!
//! Blocking: a 32 x 32 block of C lives in four f32 tiles (tmm0-3) for the whole K loop;
//! each step loads two A tiles (tmm4-5: 16 rows x 16 k-pairs) and two B tiles (tmm6-7:
//! 16 k-pairs x 16 columns) and issues four `TDPBF16PS`. B is packed once per call into
//! 32-column VNNI panels, `[panel][k-pair][32 columns]` u32 holding `(B[2q, j], B[2q+1, j])`
//! (the `bf16_gemm` packing), with the k-pairs zero-padded to a multiple of 16. A is read
//! in place when its k-pairs are contiguous and K is a multiple of 32; other rows (the last
//! partial block, or all of them) are packed as `[row][k-pair]` u32, zero-padded to whole
//! tiles. Zero padding makes every tile full, so one configuration serves all shapes.
//! Column panels are spread over rayon's threads; each run of panels configures its own tiles.

#[cfg(test)]
pub(super) mod tile_model;
mod tiles;

use super::bf16_gemm::{Bias, Operand, Out, PANEL, View, pack, store_row};
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

/// `C[m, n] = Σ_k A(i, k) · B(j, k) (+ bias[j])` on the AMX tiles, as
/// [`super::bf16_gemm::gemm`].
///
/// # Safety
/// The kernel level must be `amx` (CPU support and the OS's tile permission); `a`/`b`,
/// `c` and `bias` as for [`super::bf16_gemm::gemm`].
pub unsafe fn gemm(a: View, b: Operand, dims: (usize, usize, usize), c: *mut bf16, bias: Option<&[bf16]>, parallel: bool) {
    // SAFETY: as the caller promised; each task owns its thread's tiles while it runs.
    unsafe { gemm_on(|| AmxTiles::new(), a, b, dims, c, bias, parallel) }
}

/// The driver over any tile backend; `tiles` configures a fresh set on the calling thread.
///
/// # Safety
/// `tiles()` must be safe to call on any rayon thread; the rest as in [`gemm`].
pub(super) unsafe fn gemm_on<T: Tiles>(
    tiles: impl Fn() -> T + Sync,
    a: View,
    b: Operand,
    (m, n, k): (usize, usize, usize),
    c: *mut bf16,
    bias: Option<&[bf16]>,
    parallel: bool,
) {
    assert!(m * n * k > 0, "empty products are the caller's (Bf16Matmul)");
    assert!(bias.is_none_or(|b| b.len() == n), "bias of {n} columns");
    let kp = k.div_ceil(2).next_multiple_of(KS); // padded k-pairs
    let direct = a.cs == 1 && k % (2 * KS) == 0;
    let mfull = if direct { m / MB * MB } else { 0 };
    let rest = View {
        ptr: a.ptr.wrapping_add(mfull * a.rs),
        ..a
    };
    let mut pa = pack(rest, m - mfull, (k, kp), 1, parallel); // [row][kp]
    pa.resize((m - mfull).next_multiple_of(MB) * kp, 0);
    let (pb, bkp) = b.panels(n, (k, kp), parallel); // [panel][bkp][NB]
    let out = Out(c);
    let bias = Bias(bias.map_or(std::ptr::null(), <[bf16]>::as_ptr));
    // One column panel; `t` are the calling thread's tiles, configured once per run of
    // panels (a run never yields to another rayon job, which could release them).
    let panel = |t: &mut T, j: usize| {
        let (out, bias) = (&out, &bias);
        let mut acc = [0f32; MB * NB]; // [MB rows][NB columns]
        let accp = acc.as_mut_ptr() as *mut u8;
        let bp = pb[j * bkp * NB..].as_ptr() as *const u8;
        let (bstride, cstride) = (NB * 4, NB * 4);
        let cols = NB.min(n - j * NB);
        let bj = if bias.0.is_null() { bias.0 } else { bias.0.wrapping_add(j * NB) };
        for r0 in (0..m).step_by(MB) {
            let (ap, astride) = if r0 < mfull {
                // SAFETY: r0 < mfull ≤ m is a row of A.
                (unsafe { a.row(r0) } as *const u8, a.rs * 2)
            } else {
                (pa[(r0 - mfull) * kp..].as_ptr() as *const u8, kp * 4)
            };
            // SAFETY: A tiles read rows r0..r0+32 (inside A, or the zero-padded pack) and
            // pairs q..q+16 < kp of them (K is whole tiles when direct); B tiles read pairs
            // q..q+16 of this panel; the stores fill `acc`.
            unsafe {
                t.zero::<0>();
                t.zero::<1>();
                t.zero::<2>();
                t.zero::<3>();
                for q in (0..kp).step_by(KS) {
                    t.load::<4>(ap.add(q * 4), astride);
                    t.load::<5>(ap.add(ROWS * astride + q * 4), astride);
                    t.load::<6>(bp.add(q * bstride), bstride);
                    t.load::<7>(bp.add(q * bstride + ROW_BYTES), bstride);
                    t.dot_bf16::<0, 4, 6>();
                    t.dot_bf16::<1, 4, 7>();
                    t.dot_bf16::<2, 5, 6>();
                    t.dot_bf16::<3, 5, 7>();
                }
                t.store::<0>(accp, cstride);
                t.store::<1>(accp.add(ROW_BYTES), cstride);
                t.store::<2>(accp.add(ROWS * cstride), cstride);
                t.store::<3>(accp.add(ROWS * cstride + ROW_BYTES), cstride);
            }
            for r in 0..MB.min(m - r0) {
                // SAFETY: row r0+r, columns j*NB..j*NB+cols of C belong to this task only;
                // the bias holds those columns.
                unsafe { store_row(out.0.add((r0 + r) * n + j * NB), &acc[r * NB..][..cols], bj) };
            }
        }
    };
    if parallel {
        (0..n.div_ceil(NB)).into_par_iter().for_each_init(&tiles, panel);
    } else {
        let mut t = tiles();
        (0..n.div_ceil(NB)).for_each(|j| panel(&mut t, j));
    }
}
