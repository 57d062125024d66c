//! Self-attention in one op per (sequence, head), straight from the fused Q/K/V product,
//! with its backward pass. `[batch, heads, L, L]` is never materialised: a task holds the
//! scores of one block of at most [`QB`] query rows against every key, `[QB, s]` f32, and
//! computes them, and everything multiplied by them, as f32 GEMMs on slices
//! ([`f32_gemm`]); only the softmax and the dropout are row loops. At the `amx` level, the
//! products whose operands are bf16 as stored (the scores `q·kᵀ`, and `dout·vᵀ` in the
//! backward) run on the AMX tiles straight from `qkv`, with f32 sums (the same exact
//! products, summed in another order).
//!
//! ```text
//! qkv: [b, s, 3h] = q | k | v, head n in columns n·d..(n+1)·d of each; bias: [b, 1, 1 or s, s]
//! p = softmax(scale·q·kᵀ + bias);  p̃ = p·mask (attention dropout);  out = p̃·v: [b, s, h]
//! backward: dp̃ = dout·vᵀ;  D = Σk p̃·dp̃ (= dout·out);  ds = p·(mask·dp̃ − D)
//!           dq = scale·ds·k;  dk = scale·dsᵀ·q;  dv = p̃ᵀ·dout
//! ```
//! Sequences may also come **packed** end to end without padding (`qkv` [Σ len, 3h], one
//! additive bias entry per key, each sequence attending only to itself: `Geometry::new`),
//! so the products around attention never run on padding rows.
//!
//! The dropout mask is drawn at the index the `[b, heads, s, s]` probabilities would have,
//! so it equals the composed path's (`MaskedSoftmax` then two products). All sums are in
//! f32 whatever the storage dtype. A row whose keys are all masked with −∞ gives NaN, as
//! the composed softmax does.

use super::bf16_kernel::Bf16Kernel;
use super::dropout::DropMask;
use super::f32_gemm::{Threads, View, product};
use super::vector::{self, BackendStorage, Elem, exp};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;
use std::sync::Arc;

/// Query rows per block: a block's scores are `[QB, s]` f32.
const QB: usize = 128;

#[derive(Debug, Clone)]
pub(crate) struct Attention {
    heads: usize,
    scale: f32,
    drop: Option<DropMask>,
    /// `Some(lengths)`: sequences packed end to end (see [`Geometry::new`]).
    packed: Option<Arc<[usize]>>,
    /// The bf16 kernel that multiplies the products whose operands are bf16 as stored (the
    /// scores `q·kᵀ`, and `dout·vᵀ` in the backward) into f32 sums, read in place from
    /// `qkv`: bitwise-exact products of the same numbers as the f32 GEMM's on f32 copies,
    /// summed in another order. AMX, and AVX512-BF16 on AMD (where `vdpbf16ps` runs at
    /// twice the f32 FMA rate, [`Features::amd`](super::cpu::Features::amd)); elsewhere
    /// (and for f32) `None`, the f32 GEMM, which is faster than Intel's `vdpbf16ps`.
    scores: Option<Bf16Kernel>,
}

/// Where one sequence lives: its rows `start..start + len` of `qkv` (and of the output),
/// its first bias row at `bias`, and its first dropout counter at `prob`.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
    bias: usize,
    prob: usize,
}

/// Sizes, and where a (sequence, head, row) lives in `qkv` and `bias`.
struct Geometry {
    h: usize,
    heads: usize,
    d: usize,
    /// The bias has a row per query (causal or windowed masks), not one per sequence.
    bias_per_query: bool,
    spans: Vec<Span>,
    /// The output's shape: `[b, s, h]` padded, `[Σ len, h]` packed.
    out: Shape,
}

impl Geometry {
    /// Padded (`packed` = `None`): `qkv` [b, s, 3h], `bias` [b, 1, 1 or s, s]; sequence n is
    /// rows `n·s..(n+1)·s` and its dropout counters are the indices of the `[b, heads, s,
    /// s]` probabilities. Packed: `qkv` [Σ len, 3h], `bias` [Σ len] (one additive entry
    /// per key); sequence n is the `lengths[n]` rows after those of the sequences before
    /// it and attends only to them; its counters follow those of the sequences before it.
    fn new(qkv: &Shape, bias: &Shape, heads: usize, packed: Option<&[usize]>) -> Result<Geometry> {
        let (x, m) = (qkv.dims(), bias.dims());
        let width = |w: usize| heads > 0 && w % (3 * heads) == 0;
        match packed {
            None => {
                let ok = x.len() == 3 && width(x[2]) && m.len() == 4 && m[0] == x[0] && m[1] == 1;
                if !ok || !(m[2] == 1 || m[2] == x[1]) || m[3] != x[1] {
                    candle_core::bail!("attention: qkv {x:?} ({heads} heads) and bias {m:?} (expected [b, s, 3h] and [b, 1, 1 or s, s])")
                }
                let (b, s, h) = (x[0], x[1], x[2] / 3);
                let spans = (0..b).map(|n| Span { start: n * s, len: s, bias: n * m[2] * s, prob: n * heads * s * s }).collect();
                Ok(Geometry { h, heads, d: h / heads, bias_per_query: m[2] != 1, spans, out: Shape::from((b, s, h)) })
            }
            Some(lengths) => {
                let total: usize = lengths.iter().sum();
                if x.len() != 2 || !width(x[1]) || x[0] != total || m != [total] {
                    candle_core::bail!(
                        "attention: qkv {x:?} ({heads} heads) and bias {m:?} for {} packed sequences of {total} rows (expected [{total}, 3h] and [{total}])",
                        lengths.len()
                    )
                }
                let (mut start, mut prob) = (0, 0);
                let spans = lengths
                    .iter()
                    .map(|&len| {
                        let span = Span { start, len, bias: start, prob };
                        (start, prob) = (start + len, prob + heads * len * len);
                        span
                    })
                    .collect();
                let h = x[1] / 3;
                Ok(Geometry { h, heads, d: h / heads, bias_per_query: false, spans, out: Shape::from((total, h)) })
            }
        }
    }

    /// Offset in `qkv` of row `i` of sequence `n`, head `head`, part 0 (q), 1 (k) or 2 (v).
    #[inline(always)]
    fn at(&self, n: usize, part: usize, head: usize, i: usize) -> usize {
        (self.spans[n].start + i) * 3 * self.h + part * self.h + head * self.d
    }

    /// Offset in the output (or its gradient, `[rows, h]`) of row `i` of sequence `n`,
    /// head `head`.
    #[inline(always)]
    fn out_at(&self, n: usize, head: usize, i: usize) -> usize {
        (self.spans[n].start + i) * self.h + head * self.d
    }

    /// The additive bias of query row `i` of sequence `n` over its keys.
    #[inline(always)]
    fn bias_row<'a, E>(&self, bias: &'a [E], n: usize, i: usize) -> &'a [E] {
        let sp = self.spans[n];
        let row = sp.bias + if self.bias_per_query { i * sp.len } else { 0 };
        &bias[row..row + sp.len]
    }

    /// The dropout counter of probability `(n, head, i, 0)`.
    #[inline(always)]
    fn prob_index(&self, n: usize, head: usize, i: usize) -> usize {
        let sp = self.spans[n];
        sp.prob + (head * sp.len + i) * sp.len
    }
}

/// Head `head` of sequence `n` as f32 `[len][d]`: of part `part` of `qkv` (row stride
/// `3h`), or of the `[rows, h]` output layout when `part` is `None`.
#[inline(always)]
fn gather<E: Elem>(x: &[E], g: &Geometry, (n, head, part): (usize, usize, Option<usize>)) -> Vec<f32> {
    let sp = g.spans[n];
    let (start, stride) = match part {
        Some(part) => (g.at(n, part, head, 0), 3 * g.h),
        None => (g.out_at(n, head, 0), g.h),
    };
    let mut out = vec![0f32; sp.len * g.d];
    for (o, row) in out.chunks_exact_mut(g.d).zip(x[start..].chunks(stride)) {
        for (o, x) in o.iter_mut().zip(&row[..g.d]) {
            *o = x.get();
        }
    }
    out
}

/// Rows `[rows, parts·h]` (the output, or the Q/K/V gradient) from the per-(sequence,
/// head) f32 results `heads[n·heads + head]`, each `[parts][len][d]`: element `(part, i,
/// j)` goes to row `start + i`, column `part·h + head·d + j`, rounded to `E`. Rows are
/// written whole, chunks of them in parallel and vectorised (a serial loop over the heads
/// here was about 8% of a bf16 BERT-base forward); the spans cover every row once.
fn scatter<E: Elem>(heads: &[Vec<f32>], g: &Geometry, parts: usize) -> Vec<E> {
    let rows = g.out.elem_count() / g.h;
    let mut owner = vec![None; rows]; // (sequence, row in it) of each row
    for (n, sp) in g.spans.iter().enumerate() {
        for i in 0..sp.len {
            owner[sp.start + i] = Some((n, i));
        }
    }
    let owner: Vec<(usize, usize)> = owner.into_iter().map(|o| o.expect("the spans cover every row")).collect();
    let (width, chunk) = (parts * g.h, vector::rows_per_task(rows, parts * g.h));
    // SAFETY: every chunk of whole rows is written whole, part by part and head by head.
    unsafe {
        vector::par_fill(rows * width, chunk * width, |c, yc| {
            vector::vectorised(#[inline(always)] || {
                for (r, row) in yc.chunks_mut(width).enumerate() {
                    let (n, i) = owner[c * chunk + r];
                    let len = g.spans[n].len;
                    for (ph, o) in row.chunks_mut(g.d).enumerate() {
                        let (part, head) = (ph / g.heads, ph % g.heads);
                        let src = &heads[n * g.heads + head][(part * len + i) * g.d..][..g.d];
                        for (o, &x) in o.iter_mut().zip(src) {
                            o.write(E::put(x));
                        }
                    }
                }
            })
        })
    }
}

/// `x` as bf16 elements when `E` is bf16.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn as_bf16<E: Elem>(x: &[E]) -> Option<&[bf16]> {
    // SAFETY: E is bf16 (same TypeId), so the slice is one of bf16.
    (std::any::TypeId::of::<E>() == std::any::TypeId::of::<bf16>()).then(|| unsafe { std::slice::from_raw_parts(x.as_ptr() as *const bf16, x.len()) })
}

impl Attention {
    /// The op for `heads` heads, scores scaled by `scale`, attention dropout `drop`, and
    /// `packed` sequence lengths (see [`Geometry::new`]), at the process's kernel level.
    pub fn new(heads: usize, scale: f32, drop: Option<DropMask>, packed: Option<Arc<[usize]>>) -> Attention {
        let fast = |k: &Bf16Kernel| *k == Bf16Kernel::Amx || (*k == Bf16Kernel::Avx512Bf16 && super::cpu::features().amd);
        let scores = Bf16Kernel::for_level(super::level()).filter(fast);
        Attention { heads, scale, drop, packed, scores }
    }

    /// Padded: `qkv` [b, s, 3h], `bias` [b, 1, 1 or s, s] → [b, s, h]; packed: `qkv`
    /// [Σ len, 3h], `bias` [Σ len] → [Σ len, h] (see [`Geometry::new`]).
    pub fn forward(&self, qkv: &Tensor, bias: &Tensor) -> Result<Tensor> {
        qkv.contiguous()?.apply_op2(&bias.contiguous()?, self.clone())
    }

    /// The kernel for the bf16-operand products of storage dtype `E`: `scores` when `E` is
    /// bf16 (their operands are read in place), else `None` (f32 GEMMs on f32 copies).
    #[inline(always)]
    fn in_place<E: Elem>(&self) -> Option<Bf16Kernel> {
        self.scores.filter(|_| E::DTYPE == DType::BF16)
    }

    /// `dst [rows, s] = A · Bᵀ` in f32 for `A` `[rows, d]` and `B` `[s, d]`, each given as
    /// (slice, first element, row stride): the rows of a head in `qkv` or `dout`. Runs on
    /// the bf16 kernel when [`Attention::in_place`] gives one; `None`: the caller multiplies
    /// f32 copies.
    #[inline(always)]
    fn bf16_product<E: Elem>(&self, (xa, a, ars): (&[E], usize, usize), (xb, b, brs): (&[E], usize, usize), (rows, s, d): (usize, usize, usize), dst: &mut [f32]) -> Option<()> {
        #[cfg(target_arch = "x86_64")]
        {
            use super::bf16_gemm::{Dst, Operand, View};
            let kernel = self.in_place::<E>()?;
            let (xa, xb) = (as_bf16(xa).expect("E is bf16"), as_bf16(xb).expect("E is bf16"));
            let fits = dst.len() >= rows * s && a + (rows - 1) * ars + d <= xa.len() && b + (s - 1) * brs + d <= xb.len();
            assert!(fits && rows * s * d > 0, "attention: a bf16 product out of bounds");
            let (av, bv) = (View { ptr: xa[a..].as_ptr(), rs: ars, cs: 1 }, View { ptr: xb[b..].as_ptr(), rs: brs, cs: 1 });
            // SAFETY: the kernel is the level's (or a test's among those the CPU runs); the
            // views address rows x d and s x d elements of their slices, `dst` holds rows x s
            // (asserted).
            unsafe { kernel.gemm(av, Operand::View(bv), (rows, s, d), Dst::F32(dst.as_mut_ptr()), None, false) };
            Some(())
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (xa, a, ars, xb, b, brs, rows, s, d, dst);
            None
        }
    }

    /// The dropout factors of the `f.len()` probabilities from index `base` on (all 1
    /// without dropout).
    #[inline(always)]
    fn factors(&self, base: usize, f: &mut [f32]) {
        match self.drop {
            Some(drop) => f.iter_mut().enumerate().for_each(|(j, x)| *x = drop.factor(base + j)),
            None => f.fill(1.0),
        }
    }

    /// One row of scores `q·kᵀ` → `exp(scale·x + b − max)` in place, `b` from `brow`
    /// (the row's additive mask); returns the row's `Σ exp`.
    #[inline(always)]
    fn exp_row<E: Elem>(&self, row: &mut [f32], brow: &[E]) -> f32 {
        for (x, b) in row.iter_mut().zip(brow) {
            *x = self.scale * *x + b.get();
        }
        let max = vector::lane_max(row, |x| x);
        for x in row.iter_mut() {
            *x = exp(*x - max);
        }
        vector::lane_sum(row, |x| x)
    }

    /// One (sequence, head): its `[s][d]` outputs.
    #[inline(always)]
    fn fwd_head<E: Elem>(&self, qkv: &[E], bias: &[E], g: &Geometry, (n, head): (usize, usize)) -> Vec<f32> {
        let (s, d) = (g.spans[n].len, g.d);
        // q and k are copied to f32 only when the scores are not a bf16 product.
        let (q, k) = if self.in_place::<E>().is_some() { (Vec::new(), Vec::new()) } else { (gather(qkv, g, (n, head, Some(0))), gather(qkv, g, (n, head, Some(1)))) };
        let v = gather(qkv, g, (n, head, Some(2)));
        let mut out = vec![0f32; s * d];
        let (mut scores, mut f, mut inv) = (vec![0f32; QB.min(s) * s], vec![0f32; s], vec![0f32; QB.min(s)]);
        for i0 in (0..s).step_by(QB) {
            let qb = QB.min(s - i0);
            let p = &mut scores[..qb * s]; // [qb, s]
            let (qa, ka) = ((qkv, g.at(n, 0, head, i0), 3 * g.h), (qkv, g.at(n, 1, head, 0), 3 * g.h));
            if self.bf16_product(qa, ka, (qb, s, d), p).is_none() {
                product(p, s, View::rows(&q[i0 * d..(i0 + qb) * d], qb, d), View::rows(&k, s, d).t(), false, Threads::One);
            }
            for (r, row) in p.chunks_exact_mut(s).enumerate() {
                inv[r] = 1.0 / self.exp_row(row, g.bias_row(bias, n, i0 + r));
                self.factors(g.prob_index(n, head, i0 + r), &mut f);
                for (x, f) in row.iter_mut().zip(&f) {
                    *x *= f;
                }
            }
            let o = &mut out[i0 * d..(i0 + qb) * d]; // [qb, d] = p̃·v, then / Σ exp
            product(o, d, View::rows(p, qb, s), View::rows(&v, s, d), false, Threads::One);
            for (row, inv) in o.chunks_exact_mut(d).zip(&inv) {
                for x in row.iter_mut() {
                    *x *= inv;
                }
            }
        }
        out
    }

    /// One (sequence, head): its `[s][d]` gradients for q, k and v, side by side.
    #[inline(always)]
    fn bwd_head<E: Elem>(&self, qkv: &[E], bias: &[E], dout: &[E], g: &Geometry, (n, head): (usize, usize)) -> Vec<f32> {
        let (s, d) = (g.spans[n].len, g.d);
        let (q, k, v) = (gather(qkv, g, (n, head, Some(0))), gather(qkv, g, (n, head, Some(1))), gather(qkv, g, (n, head, Some(2))));
        let go = gather(dout, g, (n, head, None));
        let mut grads = vec![0f32; 3 * s * d]; // dq | dk | dv, each [s][d]
        let (dq, dkv) = grads.split_at_mut(s * d);
        let (dk, dv) = dkv.split_at_mut(s * d);
        let (mut scores, mut dscores, mut f) = (vec![0f32; QB.min(s) * s], vec![0f32; QB.min(s) * s], vec![0f32; s]);
        for i0 in (0..s).step_by(QB) {
            let qb = QB.min(s - i0);
            let (p, dp) = (&mut scores[..qb * s], &mut dscores[..qb * s]); // [qb, s] each
            let (qi, goi) = (View::rows(&q[i0 * d..(i0 + qb) * d], qb, d), View::rows(&go[i0 * d..(i0 + qb) * d], qb, d));
            let (qa, ka) = ((qkv, g.at(n, 0, head, i0), 3 * g.h), (qkv, g.at(n, 1, head, 0), 3 * g.h));
            if self.bf16_product(qa, ka, (qb, s, d), p).is_none() {
                product(p, s, qi, View::rows(&k, s, d).t(), false, Threads::One);
            }
            // dp̃ = dout·vᵀ: dout and v are both in the storage dtype.
            let (goa, va) = ((dout, g.out_at(n, head, i0), g.h), (qkv, g.at(n, 2, head, 0), 3 * g.h));
            if self.bf16_product(goa, va, (qb, s, d), dp).is_none() {
                product(dp, s, goi, View::rows(&v, s, d).t(), false, Threads::One);
            }
            for (r, (row, drow)) in p.chunks_exact_mut(s).zip(dp.chunks_exact_mut(s)).enumerate() {
                let inv = 1.0 / self.exp_row(row, g.bias_row(bias, n, i0 + r));
                for x in row.iter_mut() {
                    *x *= inv;
                }
                self.factors(g.prob_index(n, head, i0 + r), &mut f);
                for (x, f) in drow.iter_mut().zip(&f) {
                    *x *= f; // mask·dp̃
                }
                let big_d = vector::lane_sum2(row, drow, |a, b| a * b);
                for ((x, dx), f) in row.iter_mut().zip(drow.iter_mut()).zip(&f) {
                    *dx = self.scale * *x * (*dx - big_d); // ds
                    *x *= f; // p̃
                }
            }
            product(dv, d, View::rows(p, qb, s).t(), goi, true, Threads::One); // += p̃ᵀ·dout
            product(&mut dq[i0 * d..(i0 + qb) * d], d, View::rows(dp, qb, s), View::rows(&k, s, d), false, Threads::One);
            product(dk, d, View::rows(dp, qb, s).t(), qi, true, Threads::One); // += dsᵀ·q
        }
        grads
    }

    fn fwd<E: Elem>(&self, qkv: &[E], bias: &[E], g: &Geometry) -> Vec<E> {
        let heads: Vec<Vec<f32>> = (0..g.spans.len() * g.heads)
            .into_par_iter()
            .map(|t| vector::vectorised(#[inline(always)] || self.fwd_head(qkv, bias, g, (t / g.heads, t % g.heads))))
            .collect();
        scatter(&heads, g, 1)
    }

    fn bwd<E: Elem>(&self, qkv: &[E], bias: &[E], dout: &[E], g: &Geometry) -> Vec<E> {
        let heads: Vec<Vec<f32>> = (0..g.spans.len() * g.heads)
            .into_par_iter()
            .map(|t| vector::vectorised(#[inline(always)] || self.bwd_head(qkv, bias, dout, g, (t / g.heads, t % g.heads))))
            .collect();
        scatter(&heads, g, 3)
    }
}

impl CustomOp2 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(l1.shape(), l2.shape(), self.heads, self.packed.as_deref())?;
        let op = "attention";
        let out = match s1 {
            CpuStorage::F32(_) => f32::wrap(self.fwd(vector::contiguous::<f32>(s1, l1, op)?, vector::contiguous::<f32>(s2, l2, op)?, &g)),
            CpuStorage::BF16(_) => bf16::wrap(self.fwd(vector::contiguous::<bf16>(s1, l1, op)?, vector::contiguous::<bf16>(s2, l2, op)?, &g)),
            s => candle_core::bail!("{op}: unsupported dtype {:?}", s.dtype()),
        };
        Ok((out, g.out))
    }

    fn bwd(&self, qkv: &Tensor, bias: &Tensor, _out: &Tensor, dout: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = Geometry::new(qkv.shape(), bias.shape(), self.heads, self.packed.as_deref())?;
        fn grads<E: Elem>(op: &Attention, qkv: &Tensor, bias: &Tensor, dout: &Tensor, g: &Geometry) -> Result<Tensor> {
            let name = "attention";
            let d = vector::with_elems::<E, _>(qkv, name, |x| {
                vector::with_elems::<E, _>(bias, name, |b| vector::with_elems::<E, _>(dout, name, |o| Ok(op.bwd(x, b, o, g))))
            })?;
            vector::tensor(d, qkv.dims())
        }
        let dqkv = match qkv.dtype() {
            DType::F32 => grads::<f32>(self, qkv, bias, dout, &g)?,
            DType::BF16 => grads::<bf16>(self, qkv, bias, dout, &g)?,
            d => candle_core::bail!("attention: unsupported dtype {d:?}"),
        };
        // The mask is a constant: no gradient.
        Ok((Some(dqkv), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// `(fraction of elements bitwise equal, largest difference ÷ largest |b|)`.
    fn agreement(a: &Tensor, b: &Tensor) -> (f64, f32) {
        let v = |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
        let (a, b) = (v(a), v(b));
        let same = a.iter().zip(&b).filter(|(x, y)| x.to_bits() == y.to_bits()).count() as f64 / a.len() as f64;
        let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        (same, diff / scale)
    }

    /// The scores and `dout·vᵀ` as bf16 products on every bf16 kernel here (the AMX
    /// driver on the tile model included) against the f32 GEMMs on f32 copies: the same
    /// exact products summed in another order, so the bf16 outputs and gradients are almost
    /// all bitwise equal and never more than a bf16 rounding apart. Two query blocks (s =
    /// 150), masked keys, dropout on, d = 32 (A read in place by the AMX driver).
    #[test]
    fn bf16_products_equal_the_f32_copies() {
        let (b, s, heads, d) = (2, 150, 2, 32);
        let h = heads * d;
        let n = b * s * 3 * h;
        let values: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
        let qkv = Var::from_tensor(&Tensor::from_vec(values, (b, s, 3 * h), &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap()).unwrap();
        let mask: Vec<f32> = (0..b * s).map(|i| if i % 7 == 3 { f32::NEG_INFINITY } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (b, 1, 1, s), &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap();
        let up: Vec<f32> = (0..b * s * h).map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0).collect();
        let up = Tensor::from_vec(up, (b, s, h), &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap();
        let run = |scores: Option<Bf16Kernel>| {
            let op = Attention { scores, ..Attention::new(heads, 1.0 / (d as f32).sqrt(), Some(DropMask::new(7, 0.1)), None) };
            let out = op.forward(qkv.as_tensor(), &mask).unwrap();
            let grad = (&out * &up).unwrap().sum_all().unwrap().backward().unwrap().get(&qkv).unwrap().clone();
            (out, grad)
        };
        let (out, grad) = run(None);
        for kernel in Bf16Kernel::here() {
            let (fast_out, fast_grad) = run(Some(kernel));
            for (name, f, p) in [("output", &fast_out, &out), ("gradient", &fast_grad, &grad)] {
                let (same, diff) = agreement(f, p);
                assert!(same > 0.9 && diff < 1e-2, "{kernel:?} {name}: {:.1}% bitwise equal, largest difference {diff}", 100.0 * same);
            }
        }
    }
}
