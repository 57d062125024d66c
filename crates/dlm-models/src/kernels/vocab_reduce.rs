//! The vocabulary projection fused with greedy decoding: per row of `x` `[rows, hidden]`,
//! the argmax and the log-probability of `log_softmax(x · Wᵀ + b)` over the vocabulary
//! with one id excluded, without ever writing the `[rows, vocab]` logits.
//!
//! The decoder GEMM runs in blocks of about [`BLOCK`] vocabulary columns through the same
//! product as the plain path ([`kernels::matmul`] on a narrowed `[block, hidden]` view of
//! the weight), so each logit is the same dot product in the same K order: bitwise the
//! plain logit. (The f32 GEMM picks other K blockings for products under 65 columns or
//! 257 elements, so the blocks are made equal in size, never narrower than `BLOCK / 2`.
//! Its K blocking depends on K alone, so a logit does not depend on how many rows share
//! its product, except that a single row takes the GEMV path: the products here are up to
//! [`GEMM_ROWS`] rows tall, 4 of the plain path's [`PROJECT_ROWS`] chunks, and a row the
//! plain path projects alone is projected alone.) Blocks are the outer loop and row
//! chunks the inner one, so a block's weights are packed for each product while they are
//! still in cache; taller products pack them less often (9% more batched serving
//! throughput than 256-row products). Each block's logits + decoder bias
//! (rounded to bf16 first when the model runs in bf16, as the plain path's bf16 add does)
//! are reduced at once, in f32 and in parallel over rows, into a running max and a sum
//! of `exp(x − max)` rescaled when the max grows (the online log-sum-exp). Memory is the
//! block's logits, `GEMM_ROWS × BLOCK` f32 (16 MiB), and one row of scratch per task.
//!
//! Ties follow the plain path exactly: it picks the first index whose *log-probability*
//! `fl(fl(x − m) − L)` equals the maximum `−L` (`m` the max logit, `L = ln Σ exp(x − m)`),
//! and rounding by `− L` can tie logits that differ by less than an ulp of `L`. So each row
//! also keeps, in index order, the logits within [`NEAR`] of its running max that beat
//! every earlier one kept (a handful at most); the winner is the first of them whose
//! log-probability rounds to `−L`. Only `L` itself differs from the plain path's, in the
//! order of its additions (16 lanes per block, blocks summed in f64).
//!
//! The block max and `Σ exp` run over 16 f32 lanes with the branch-free `vector::exp`,
//! in the copy of the row loop that [`vectorised`] compiled for the CPU's widest ISA;
//! every copy computes the same lanes in the same order, so results do not depend on it.
//!
//! On AVX-512F, f32 products of at most `f32_skinny::MAX_ROWS` rows (a cached step's
//! masked positions) read the decoder in panels instead, as the plain path's Linear op
//! does for them, in blocks that start at multiples of BLOCK: a frozen decoder's panels
//! are kept (made on its first such product), tied to the word embeddings or not.

use super::f32_gemm::{self, Threads, View};
#[cfg(target_arch = "x86_64")]
use super::f32_skinny;
use super::vector::{self, Elem, exp, vectorised};
use crate::kernels;
use crate::masked_lm::PROJECT_ROWS;
use candle_core::{DType, Result, Tensor};
use half::bf16;
use rayon::prelude::*;

/// Vocabulary columns per GEMM block, at most.
const BLOCK: usize = 4096;
/// Rows per GEMM, at most: the weights are packed once per block and product, so fewer,
/// taller products pack them less often.
const GEMM_ROWS: usize = 4 * PROJECT_ROWS;
// The plain path's chunks take a frozen decoder's kept panels whole.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(f32_skinny::KEPT_MAX_ROWS >= PROJECT_ROWS);
/// How far below the max a logit may still tie with it once `L ≤ ln vocab < 32` is
/// subtracted in f32 (ulp(32⁻) = 2⁻¹⁹, with a factor 2 to spare).
const NEAR: f32 = 1.0 / 262_144.0;
/// f32 lanes per accumulator (one AVX-512 register, two AVX2 registers).
const LANES: usize = 16;

/// Per row of `x` `[rows, h]`: `(argmax, log p)` of `log_softmax(x · weightᵀ + bias)` with
/// column `excluded` forbidden. `weight` `[vocab, h]`, `bias` `[vocab]`; CPU tensors of
/// the dtype of `x` (f32 or bf16). `prepacked`: a frozen decoder's packed bf16 form, packed
/// whole once and read block by block.
pub(crate) fn project_argmax(x: &Tensor, weight: &Tensor, bias: &Tensor, excluded: u32, prepacked: Option<&kernels::Prepacked>) -> Result<Vec<(u32, f32)>> {
    let (_, h) = x.dims2()?;
    let (v, hw) = weight.dims2()?;
    if hw != h || bias.dims() != [v] || v == 0 {
        candle_core::bail!(
            "vocab-reduce: x {:?}, weight {:?}, bias {:?} do not fit (expected [n, h], [vocab ≥ 1, h], [vocab])",
            x.dims(),
            weight.dims(),
            bias.dims()
        )
    }
    let bias_t = bias; // as given, for the bf16 product that adds it itself
    let bias: Vec<f32> = bias.to_dtype(DType::F32)?.to_vec1()?;
    let n = x.dim(0)?;
    let row_major = weight.is_contiguous();
    match x.dtype() {
        // Products of a few rows read the decoder in panels, as the plain path's Linear op
        // does (a frozen decoder's kept in `prepacked`, made on its first such product;
        // any other's made here block by block), taller ones take the GEMM as below.
        // Blocks start at multiples of BLOCK, a multiple of the panel width.
        #[cfg(target_arch = "x86_64")]
        DType::F32 if f32_skinny::available() && (row_major || weight.t()?.is_contiguous()) => {
            let transposed = !row_major;
            let values = if transposed { weight.t()? } else { weight.clone() }; // Wᵀ [h, v] or W [v, h]
            // Kept panels serve the plain path's chunks whole (no packing to share among
            // more rows).
            let tall = if prepacked.is_some() { PROJECT_ROWS } else { GEMM_ROWS };
            vector::with_elems::<f32, _>(&values, "vocab-reduce", |values| {
                let w = f32_skinny::Weight { values, transposed, k: h, n: v };
                let mut made: Option<(usize, f32_skinny::Panels)> = None; // a block's, without `prepacked`
                let mut buf = Vec::new();
                let aligned = (0..v).step_by(BLOCK).map(|c0| (c0, BLOCK.min(v - c0)));
                vector::with_elems::<f32, _>(x, "vocab-reduce", |xs| {
                    reduce::<f32>((n, tall), &bias, excluded, aligned, |(r0, rows), (c0, cols), fold| {
                        let xr = &xs[r0 * h..(r0 + rows) * h];
                        if !f32_skinny::takes(rows, prepacked.is_some()) {
                            return match transposed {
                                true => matmul_logits(x, weight, (r0, rows), (c0, cols), fold),
                                false => fold(f32_logits(xr, &values[c0 * h..(c0 + cols) * h], h, &mut buf)),
                            };
                        }
                        let logits = match prepacked {
                            Some(p) => f32_skinny::product(xr, rows, &*p.panels(weight)?, (c0, cols), None),
                            None => {
                                if made.as_ref().is_none_or(|(at, _)| *at != c0) {
                                    made = Some((c0, f32_skinny::Panels::of(w, (c0, cols))));
                                }
                                f32_skinny::product(xr, rows, &made.as_ref().expect("made above").1, (0, cols), None)
                            }
                        };
                        fold(&logits)
                    })
                })
            })
        }
        DType::F32 if row_major => vector::with_elems::<f32, _>(x, "vocab-reduce", |xs| {
            vector::with_elems::<f32, _>(weight, "vocab-reduce", |ws| {
                let mut buf = Vec::new();
                reduce::<f32>((n, GEMM_ROWS), &bias, excluded, blocks(v), |(r0, rows), (c0, cols), fold| {
                    fold(f32_logits(&xs[r0 * h..(r0 + rows) * h], &ws[c0 * h..(c0 + cols) * h], h, &mut buf))
                })
            })
        }),
        DType::F32 => reduce::<f32>((n, GEMM_ROWS), &bias, excluded, blocks(v), |r, c, fold| matmul_logits(x, weight, r, c, fold)),
        // The plain path's decoder (`Dense`) adds the bias inside the product, before its
        // one rounding, where the fused Linear op runs; the blocks do the same. A logit of
        // the bf16 kernels does not depend on its column's block, so blocks start at
        // multiples of BLOCK (a multiple of the 32-column panels of the packed decoder).
        DType::BF16 if kernels::Linear::applies(x, weight) => {
            let aligned = (0..v).step_by(BLOCK).map(|c0| (c0, BLOCK.min(v - c0)));
            reduce::<bf16>((n, GEMM_ROWS), &vec![0f32; v], excluded, aligned, |(r0, rows), (c0, cols), fold| {
                let (xr, br) = (x.narrow(0, r0, rows)?, bias_t.narrow(0, c0, cols)?);
                let logits = kernels::Linear::forward_rows(&xr, weight, (c0, cols), Some(&br), prepacked)?;
                vector::with_elems::<bf16, _>(&logits, "vocab-reduce", |logits| fold(logits))
            })
        }
        DType::BF16 => reduce::<bf16>((n, GEMM_ROWS), &bias, excluded, blocks(v), |r, c, fold| matmul_logits(x, weight, r, c, fold)),
        dtype => candle_core::bail!("vocab-reduce: dtype {dtype:?}, expected f32 or bf16"),
    }
}

/// The logits of rows `r0..r0 + rows` of `x` and vocabulary columns `c0..c0 + cols`
/// through [`kernels::matmul`] on narrowed views, handed to `fold`.
fn matmul_logits<E: Elem>(
    x: &Tensor,
    weight: &Tensor,
    (r0, rows): (usize, usize),
    (c0, cols): (usize, usize),
    fold: &mut dyn FnMut(&[E]) -> Result<()>,
) -> Result<()> {
    let logits = kernels::matmul(&x.narrow(0, r0, rows)?, &weight.narrow(0, c0, cols)?.t()?)?; // [rows, cols]
    vector::with_elems::<E, _>(&logits, "vocab-reduce", |logits| fold(logits))
}

/// `x · wᵀ` `[rows, cols]` for `x` `[rows, h]` and `w` `[cols, h]` (row-major), into
/// `buf`: the very `gemm` call candle's f32 matmul makes for these operands (so bitwise
/// its result), without the zeroed fresh output candle allocates for every product (5% of
/// a batched serving step).
fn f32_logits<'b>(x: &[f32], w: &[f32], h: usize, buf: &'b mut Vec<f32>) -> &'b [f32] {
    let (rows, cols) = (x.len() / h, w.len() / h);
    if buf.len() < rows * cols {
        buf.resize(rows * cols, 0.0); // grows to the largest block once; never zeroed again
    }
    let out = &mut buf[..rows * cols];
    f32_gemm::product(out, cols, View::rows(x, rows, h), View::rows(w, cols, h).t(), false, Threads::All);
    out
}

/// [`project_argmax`] over logits of element type `E`, `n` rows in products of up to
/// `tall` rows ([`row_chunks`]); `bias` `[vocab]` in f32. `product((r0, rows), (c0, cols),
/// fold)` computes the logits of rows `r0..r0 + rows` and columns `c0..c0 + cols` and hands
/// them to `fold`.
fn reduce<E: Elem>(
    (n, tall): (usize, usize),
    bias: &[f32],
    excluded: u32,
    blocks: impl Iterator<Item = (usize, usize)>,
    mut product: impl FnMut((usize, usize), (usize, usize), &mut dyn FnMut(&[E]) -> Result<()>) -> Result<()>,
) -> Result<Vec<(u32, f32)>> {
    let chunks = row_chunks(n, tall);
    let mut states = vec![RowReduction::new(); n];
    // Vocabulary blocks outside, row chunks inside: a block's weights (unless prepacked)
    // are packed by every chunk's product while they are still in cache.
    for (c0, cols) in blocks {
        let block_bias = &bias[c0..c0 + cols];
        let skip = (excluded as usize).checked_sub(c0).filter(|&e| e < cols);
        for &(r0, rows) in &chunks {
            let states = &mut states[r0..r0 + rows];
            product((r0, rows), (c0, cols), &mut |logits: &[E]| {
                let per_task = vector::rows_per_task(rows, cols);
                let tasks = states.par_iter_mut().enumerate().with_min_len(per_task);
                // One row of scratch per task, reused row after row (it stays in L1).
                tasks.for_each_init(
                    || vec![0f32; cols],
                    |row, (i, state)| {
                        vectorised(#[inline(always)] || state.push(&logits[i * cols..(i + 1) * cols], block_bias, skip, row, c0))
                    },
                );
                Ok(())
            })?;
        }
    }
    Ok(states.iter().map(RowReduction::finish).collect())
}

/// `(first row, rows)` of the products: `tall` rows at a time ([`GEMM_ROWS`], or the plain
/// path's [`PROJECT_ROWS`]), except that the
/// plain path's last chunk (`n % PROJECT_ROWS` rows, after whole chunks), when it is few
/// rows, is projected alone here too: one row takes the GEMV path, and on AVX-512F up to
/// `f32_skinny::MAX_ROWS` rows take the few-row kernel. A logit of any other row does not
/// depend on how many rows share its product (the f32 GEMM's K blocking depends on K only).
fn row_chunks(n: usize, tall: usize) -> Vec<(usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    let few = if f32_skinny::available() { f32_skinny::MAX_ROWS } else { 1 };
    #[cfg(not(target_arch = "x86_64"))]
    let few = 1;
    let tail = if n > PROJECT_ROWS && n % PROJECT_ROWS <= few { n % PROJECT_ROWS } else { 0 };
    let shared = n - tail;
    let mut chunks: Vec<(usize, usize)> =
        (0..shared).step_by(tall).map(|r0| (r0, tall.min(shared - r0))).collect();
    if tail > 0 {
        chunks.push((shared, tail));
    }
    chunks
}

/// `(first column, columns)` of the vocabulary blocks: `⌈v / BLOCK⌉` blocks of equal size
/// (±1), so none is narrow.
fn blocks(v: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = v.div_ceil(BLOCK).max(1);
    (0..count).map(move |i| (i * v / count, (i + 1) * v / count - i * v / count))
}

/// One row's running reduction over the vocabulary blocks seen so far.
#[derive(Clone, Debug)]
struct RowReduction {
    /// The largest logit (NaN ignored, as candle's `max` does past the first column).
    max: f32,
    /// `Σ exp(x − max)`.
    sum: f64,
    /// `(column, logit)` within [`NEAR`] of `max`, each larger than all earlier ones.
    near: Vec<(u32, f32)>,
}

impl RowReduction {
    fn new() -> RowReduction {
        RowReduction { max: f32::NEG_INFINITY, sum: 0.0, near: Vec::new() }
    }

    /// Folds in the logits `logits + bias` of columns `c0..c0 + logits.len()` (column
    /// `c0 + skip` forbidden), rounded to `E` as the plain path's bias add rounds them,
    /// using `row` as scratch.
    #[inline(always)]
    fn push<E: Elem>(&mut self, logits: &[E], bias: &[f32], skip: Option<usize>, row: &mut [f32], c0: usize) {
        let row = &mut row[..logits.len()];
        for ((y, l), &b) in row.iter_mut().zip(logits).zip(bias) {
            *y = E::put(l.get() + b).get();
        }
        if let Some(e) = skip {
            row[e] = f32::NEG_INFINITY;
        }
        let block_max = vector::lane_max(row, |x| x);
        if block_max > self.max {
            if self.sum != 0.0 {
                self.sum *= ((self.max - block_max) as f64).exp();
            }
            self.max = block_max;
            let m = block_max;
            self.near.retain(|&(_, x)| x - m >= -NEAR);
        }
        if self.max == f32::NEG_INFINITY {
            return; // nothing but −∞ (or NaN) so far: no term of the sum yet
        }
        if block_max - self.max >= -NEAR {
            // Only 16-column chunks whose own max passes the test can hold a near logit
            // (`x − max` is monotonic in x), so the scalar scan runs on those alone.
            for (k, chunk) in row.chunks(LANES).enumerate() {
                if vector::lane_max(chunk, |x| x) - self.max < -NEAR {
                    continue;
                }
                for (j, &x) in chunk.iter().enumerate() {
                    if x - self.max >= -NEAR && self.near.last().is_none_or(|&(_, best)| x > best) {
                        self.near.push(((c0 + k * LANES + j) as u32, x));
                    }
                }
            }
        }
        self.sum += sum_exp_lanes(row, self.max) as f64;
    }

    /// `(token, log p)`: the first column whose log-probability equals the largest, `−L`.
    fn finish(&self) -> (u32, f32) {
        let l = self.sum.ln() as f32;
        let top = -l; // fl(fl(m − m) − L)
        self.near.iter().find(|&&(_, x)| (x - self.max) - l == top).map_or((0, f32::NAN), |&(i, _)| (i, top))
    }
}

/// `Σ exp(x − m)` over 16 lanes, then the lanes and the tail in order.
#[inline(always)]
fn sum_exp_lanes(xs: &[f32], m: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += exp(x - m);
        }
    }
    tail.iter().map(|&x| exp(x - m)).chain(acc).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masked_lm::log_probs_excluding;
    use candle_core::{D, Device};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `[rows, cols]` values uniform in ±`scale`, in `dtype`.
    fn random(shape: (usize, usize), scale: f32, seed: u64, dtype: DType) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f32> = (0..shape.0 * shape.1).map(|_| rng.random_range(-scale..scale)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }

    /// The plain path: full logits in the model's dtype (the head's decoder, a `Dense`),
    /// then `log_softmax` → argmax, max.
    fn plain(x: &Tensor, w: &Tensor, b: &Tensor, excluded: u32) -> Vec<(u32, f32)> {
        let logits = crate::dense::Dense::new(w.clone(), b.clone()).forward(x).unwrap();
        let logp = log_probs_excluding(&logits, excluded).unwrap();
        let tokens = logp.argmax(D::Minus1).unwrap().to_vec1::<u32>().unwrap();
        tokens.into_iter().zip(logp.max(D::Minus1).unwrap().to_vec1::<f32>().unwrap()).collect()
    }

    fn assert_same(fused: &[(u32, f32)], plain: &[(u32, f32)], what: &str) {
        assert_eq!(fused.len(), plain.len());
        for (i, (f, p)) in fused.iter().zip(plain).enumerate() {
            assert_eq!(f.0, p.0, "{what}: row {i}: token");
            assert!((f.1 - p.1).abs() <= 1e-5, "{what}: row {i}: log p {} vs {}", f.1, p.1);
        }
    }

    /// Narrowing the weight to the kernel's blocks gives bitwise the columns of the full
    /// product, for one row (GEMV), a few rows and a chunk of rows.
    #[test]
    fn block_products_are_bitwise_the_full_product() {
        for dtype in [DType::F32, DType::BF16] {
            for (rows, v) in [(1, 9_000), (2, 4097), (37, 10_000), (PROJECT_ROWS, 8_500)] {
                let (x, w) = (random((rows, 96), 1.0, 1, dtype), random((v, 96), 1.0, 2, dtype));
                let full = kernels::matmul(&x, &w.t().unwrap()).unwrap().to_dtype(DType::F32).unwrap();
                let split: Vec<(usize, usize)> = blocks(v).collect();
                assert!(split.len() > 1 && split.iter().all(|&(_, cols)| cols >= BLOCK / 2));
                assert_eq!(split.iter().map(|&(_, cols)| cols).sum::<usize>(), v);
                for (c0, cols) in split {
                    let block = kernels::matmul(&x, &w.narrow(0, c0, cols).unwrap().t().unwrap()).unwrap();
                    let bits = |t: &Tensor| -> Vec<u32> {
                        let t = t.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
                        t.to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
                    };
                    let same = bits(&block) == bits(&full.narrow(1, c0, cols).unwrap());
                    assert!(same, "{dtype:?}, {rows} rows: block {c0}+{cols} differs from the full product");
                }
            }
        }
    }

    /// The head's own f32 product is bitwise candle's matmul of the same views, for one
    /// row (GEMV), a few rows and a tall chunk.
    #[test]
    fn f32_logits_are_bitwise_candles_product() {
        for rows in [1, 7, PROJECT_ROWS + 3] {
            let (x, w) = (random((rows, 96), 1.0, 13, DType::F32), random((3000, 96), 1.0, 14, DType::F32));
            let (c0, cols) = (700, 2100);
            let candle = kernels::matmul(&x, &w.narrow(0, c0, cols).unwrap().t().unwrap()).unwrap();
            let candle: Vec<u32> = candle.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect();
            let (xs, ws) = (x.flatten_all().unwrap().to_vec1::<f32>().unwrap(), w.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            let mut buf = Vec::new();
            let ours: Vec<u32> = f32_logits(&xs, &ws[c0 * 96..(c0 + cols) * 96], 96, &mut buf).iter().map(|v| v.to_bits()).collect();
            assert!(ours == candle, "{rows} rows: the head's product differs from candle's");
        }
    }

    /// A logit does not depend on how many rows share its product (at K = 96 and at
    /// K = 768, past the GEMM's 512-deep K blocks): the tall products equal the plain
    /// path's `PROJECT_ROWS` chunks bitwise; and a lone last row, or a last chunk of a few
    /// rows, stays alone.
    #[test]
    fn tall_products_are_bitwise_the_plain_chunks() {
        assert_eq!(row_chunks(1, GEMM_ROWS), vec![(0, 1)]);
        assert_eq!(row_chunks(PROJECT_ROWS + 1, GEMM_ROWS), vec![(0, PROJECT_ROWS), (PROJECT_ROWS, 1)]);
        assert_eq!(row_chunks(GEMM_ROWS + 3, GEMM_ROWS), vec![(0, GEMM_ROWS), (GEMM_ROWS, 3)]);
        assert_eq!(row_chunks(GEMM_ROWS + 1, GEMM_ROWS), vec![(0, GEMM_ROWS), (GEMM_ROWS, 1)]);
        // A last plain chunk of a few rows takes the few-row kernel (AVX-512F), alone.
        #[cfg(target_arch = "x86_64")]
        if f32_skinny::available() {
            assert_eq!(row_chunks(PROJECT_ROWS + 40, GEMM_ROWS), vec![(0, PROJECT_ROWS), (PROJECT_ROWS, 40)]);
        }
        assert_eq!(row_chunks(PROJECT_ROWS + 100, GEMM_ROWS), vec![(0, PROJECT_ROWS + 100)]);
        // Over kept panels, the plain path's chunks.
        assert_eq!(row_chunks(2 * PROJECT_ROWS + 100, PROJECT_ROWS), vec![(0, PROJECT_ROWS), (PROJECT_ROWS, PROJECT_ROWS), (2 * PROJECT_ROWS, 100)]);
        let n = 2 * PROJECT_ROWS + 1;
        assert_eq!(row_chunks(n, GEMM_ROWS), vec![(0, n - 1), (n - 1, 1)]);
        let bits = |t: Tensor| -> Vec<u32> { t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect() };
        for h in [96, 768] {
            let (x, w) = (random((n, h), 1.0, 11, DType::F32), random((700, h), 1.0, 12, DType::F32));
            let w = w.t().unwrap();
            let mut plain = Vec::new();
            for r0 in (0..n).step_by(PROJECT_ROWS) {
                let rows = PROJECT_ROWS.min(n - r0);
                plain.extend(bits(kernels::matmul(&x.narrow(0, r0, rows).unwrap(), &w).unwrap()));
            }
            let mut tall = Vec::new();
            for (r0, rows) in row_chunks(n, GEMM_ROWS) {
                tall.extend(bits(kernels::matmul(&x.narrow(0, r0, rows).unwrap(), &w).unwrap()));
            }
            assert!(tall == plain, "K = {h}: a tall product differs from the plain chunks");
        }
    }

    /// A vocabulary of 50,000 (blocks do not divide it), two row chunks (the second a lone
    /// row, projected by the GEMV path), the excluded id in the first, a middle and the
    /// last block, and on the argmax itself: tokens identical, log p within 1e-5, in f32
    /// and in bf16.
    #[test]
    fn equals_the_plain_path_on_a_real_sized_vocabulary() {
        let (n, h, v) = (PROJECT_ROWS + 1, 64, 50_000);
        for dtype in [DType::F32, DType::BF16] {
            let x = random((n, h), 1.0, 4, dtype);
            let w = random((v, h), 0.5, 5, dtype);
            let b = random((1, v), 0.5, 6, dtype).squeeze(0).unwrap();
            let first_winner = plain(&x, &w, &b, u32::MAX)[0].0;
            let prepacked = kernels::Prepacked::default();
            for excluded in [3, 20_000, 49_999, first_winner] {
                let fused = project_argmax(&x, &w, &b, excluded, None).unwrap();
                assert_same(&fused, &plain(&x, &w, &b, excluded), &format!("{dtype:?}, excluded {excluded}"));
                assert!(fused.iter().all(|&(t, _)| t != excluded));
                // A frozen decoder packed once (bf16 kernels), read block by block: the same.
                let from_packed = project_argmax(&x, &w, &b, excluded, Some(&prepacked)).unwrap();
                assert!(from_packed == fused, "{dtype:?}, excluded {excluded}: the prepacked decoder differs");
            }
        }
    }

    /// Exact ties (duplicated weight rows, across blocks) go to the first column, as
    /// candle's `argmax` does; so do logits an ulp apart that `− L` rounds to one value.
    #[test]
    fn ties_go_to_the_first_column_like_the_plain_path() {
        let (n, h, v) = (8, 16, 3 * BLOCK + 100);
        let x = random((n, h), 1.0, 7, DType::F32);
        let mut wv = random((v, h), 0.1, 8, DType::F32).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Column 5000 copies column 9000's row (another block) and beats everything else.
        let strong: Vec<f32> = x.get(0).unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x * 3.0).collect();
        for c in [5000, 9000] {
            wv[c * h..(c + 1) * h].copy_from_slice(&strong);
        }
        let w = Tensor::from_vec(wv, (v, h), &Device::Cpu).unwrap();
        let mut bias = vec![0f32; v];
        // Row-independent near-ties: a logit of exactly 0.5 one ulp above a later 0.5⁻ and
        // below an earlier 0.5⁻ — all three are ties once log p is rounded.
        let zero = Tensor::zeros((n, h), DType::F32, &Device::Cpu).unwrap();
        bias[10] = 0.5f32.next_down();
        bias[BLOCK + 10] = 0.5;
        bias[2 * BLOCK + 10] = 0.5f32.next_down();
        let b = Tensor::new(bias.as_slice(), &Device::Cpu).unwrap();
        let fused = project_argmax(&x, &w, &b, 0, None).unwrap();
        let want = plain(&x, &w, &b, 0);
        assert_same(&fused, &want, "duplicated rows");
        assert_eq!(fused[0].0, 5000);
        let fused = project_argmax(&zero, &w, &b, 0, None).unwrap();
        let want = plain(&zero, &w, &b, 0);
        assert_same(&fused, &want, "near ties");
        assert_eq!(want[0].0, 10, "the plain path ties an ulp-apart logit after − L");
    }
}
