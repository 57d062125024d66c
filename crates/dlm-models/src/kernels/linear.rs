//! `y = x · Wᵀ + b` (HF `nn.Linear`, weight `[out, in]`) on CPU tensors as one candle op
//! with its backward pass, computed on slices by the f32 GEMM ([`f32_gemm`]), or in bf16
//! by the level's bf16 GEMM kernel (AMX or AVX512-BF16, [`Bf16Kernel`]):
//! - `x [.., in]` and `y [.., out]` are read and written in place, so the graph has no
//!   reshape nodes around the product, and `W` is read transposed in place (no transpose
//!   node): each node of candle's graph costs a zeroed gradient buffer and an add pass in
//!   the backward, which made gradient accumulation 15% of a training step;
//! - the bias is the product's initial value (PyTorch's `addmm` does the same), not a
//!   separate pass; without a bias, the product is written once, never zeroed first. In
//!   bf16 it is added to the f32 sums before their one rounding (as oneDNN's bf16 `addmm`
//!   under PyTorch's autocast), where the composed form rounds the product, adds the bias
//!   and rounds again;
//! - in bf16 every product keeps f32 sums and rounds once (`dx`, `dW` too), and the
//!   weight gradient comes out in the weight's own layout: no transposed gradient for
//!   candle's backward to copy.
//!
//! Backward: `dx = dy · W`, `dW = dyᵀ · x`, `db = Σrows dy`.
//!
//! `W` may also be stored **column-major** (its transpose `[in, out]` contiguous, as
//! `ParamBuilder::load_linear` lays out an f32 inference model's weights): the GEMM then
//! reads `Wᵀ` with unit column stride, which the `gemm` crate multiplies up to about 17%
//! faster on BERT-base's shapes (`examples/gemm_bench.rs`, `column_major_gflops`). Both
//! layouts give the same `y`.
//!
//! On AVX-512F CPUs, f32 products of at most 64 rows run in [`f32_skinny`] over the
//! weight in panels, whichever its layout: a frozen weight's panels are made on its first
//! such product and kept in its [`Prepacked`] (a second f32 copy of the weight), any other
//! weight's are made for the call. Over kept panels, products of up to 256 rows take it
//! too (nothing to pack per call); so a frozen and a trainable weight give the same `y`
//! bitwise up to 64 rows and past 256, and up to the order of the f32 additions between.

use super::bf16_kernel::Bf16Kernel;
use super::bias_add::bias_grad;
use super::f32_gemm::{Threads, View, new_product, product};
#[cfg(target_arch = "x86_64")]
use super::f32_skinny;
use super::vector::{self, Elem};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use half::bf16;
use std::sync::Arc;

/// `x · Wᵀ (+ b)` for f32 or bf16 CPU tensors (see the module docs). `transposed`: the
/// op's weight operand is `Wᵀ [in, out]` (contiguous), not `W [out, in]`. `bf16`: the
/// kernel for bf16 operands.
#[derive(Clone)]
pub(crate) struct Linear {
    transposed: bool,
    bf16: Option<Bf16Kernel>,
    /// `gelu(x · Wᵀ + b)` in bf16, forward only ([`Linear::forward_gelu`]).
    gelu: bool,
    /// The bf16 forward operand of the whole weight the op's weight belongs to, packed
    /// beforehand ([`Prepacked`]), and the op's first row in it.
    #[cfg(target_arch = "x86_64")]
    packed: Option<(Arc<bf16_views::Packed>, usize)>,
    /// The same for a few-row f32 product: the weight in panels ([`Prepacked`]).
    #[cfg(target_arch = "x86_64")]
    panels: Option<Arc<f32_skinny::Panels>>,
}

/// A frozen weight's bf16 forward operand, packed on its first product and reused by every
/// later one: an inference model's weights never change, so the kernels need not pack them
/// per call. Likewise a frozen f32 weight's panels, made on its first product of at most
/// [`f32_skinny::KEPT_MAX_ROWS`] rows (a cached denoising step's, a batch's few-row
/// vocabulary projection). Trainable weights (updated in place every step) have neither.
#[derive(Default)]
pub(crate) struct Prepacked {
    #[cfg(target_arch = "x86_64")]
    packed: std::sync::OnceLock<Arc<bf16_views::Packed>>,
    #[cfg(target_arch = "x86_64")]
    panels: std::sync::OnceLock<Arc<f32_skinny::Panels>>,
}

impl Prepacked {
    /// The packed form of `weight` (the op's weight operand: `[out, in]`, or `[in, out]`
    /// when `transposed`), packed now if this is its first product.
    #[cfg(target_arch = "x86_64")]
    fn get(&self, weight: &Tensor, transposed: bool) -> Result<Arc<bf16_views::Packed>> {
        if let Some(p) = self.packed.get() {
            return Ok(p.clone());
        }
        let (a, b) = weight.dims2()?;
        let (out, inp) = if transposed { (b, a) } else { (a, b) };
        let packed = vector::with_elems::<bf16, _>(weight, "linear", |w| {
            Ok(Arc::new(bf16_views::Packed::new(bf16_views::w_oi(w, transposed, (inp, out)), out, inp)))
        })?;
        Ok(self.packed.get_or_init(|| packed).clone())
    }

    /// The panels of an f32 `weight` `[out, in]` (row-major, or column-major: its `Wᵀ
    /// [in, out]` contiguous), made now if this is its first few-row product.
    #[cfg(target_arch = "x86_64")]
    pub fn panels(&self, weight: &Tensor) -> Result<Arc<f32_skinny::Panels>> {
        if let Some(p) = self.panels.get() {
            return Ok(p.clone());
        }
        let panels = Arc::new(f32_panels(weight)?);
        Ok(self.panels.get_or_init(|| panels).clone())
    }
}

/// An f32 `weight` `[out, in]`, row-major or column-major, in panels (`f32_skinny::Panels`
/// of its `Wᵀ`).
#[cfg(target_arch = "x86_64")]
fn f32_panels(weight: &Tensor) -> Result<f32_skinny::Panels> {
    let (n, k) = weight.dims2()?;
    let transposed = column_major(weight)?;
    let values = if transposed { weight.t()? } else { weight.contiguous()? };
    vector::with_elems::<f32, _>(&values, "linear", |values| Ok(f32_skinny::Panels::of(f32_skinny::Weight { values, transposed, k, n }, (0, n))))
}

impl Linear {
    /// Whether the op computes `x · Wᵀ` for these operands at the process's kernel level:
    /// f32, or bf16 where the level has a bf16 GEMM kernel; CPU tensors, fused kernels on.
    pub fn applies(x: &Tensor, weight: &Tensor) -> bool {
        let dtype_ok = match (x.dtype(), weight.dtype()) {
            (DType::F32, DType::F32) => true,
            (DType::BF16, DType::BF16) => Bf16Kernel::for_level(super::level()).is_some(),
            _ => false,
        };
        dtype_ok && x.device().is_cpu() && super::fused_enabled()
    }

    /// `x`: [.., in], `weight`: [out, in] (row- or column-major), `bias`: [out] → [.., out];
    /// `prepacked`: where a frozen weight keeps its packed bf16 form.
    pub fn forward(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, prepacked: Option<&Prepacked>) -> Result<Tensor> {
        Linear::forward_with(Bf16Kernel::for_level(super::level()), x, weight, bias, prepacked.map(|p| (p, weight, 0)), false)
    }

    /// Whether [`Linear::forward_gelu`] runs for these operands: bf16 CPU tensors at a
    /// level with a bf16 GEMM kernel, fused kernels on.
    pub fn gelu_applies(x: &Tensor, weight: &Tensor) -> bool {
        x.dtype() == DType::BF16 && Linear::applies(x, weight)
    }

    /// `gelu(x · Wᵀ + b)` with exact-erf GELU, for inference (the op has no backward): the
    /// activation is the product's epilogue, applied to each bf16-rounded sum as it leaves
    /// the kernel (PyTorch's bf16 `addmm` then `gelu`), so the `[.., out]` product is never
    /// written and read again. Only where [`Linear::gelu_applies`].
    pub fn forward_gelu(x: &Tensor, weight: &Tensor, bias: &Tensor, prepacked: Option<&Prepacked>) -> Result<Tensor> {
        Linear::forward_with(Bf16Kernel::for_level(super::level()), x, weight, Some(bias), prepacked.map(|p| (p, weight, 0)), true)
    }

    /// [`Linear::forward`] with rows `first..first + rows` of `whole` `[out, in]` as the
    /// weight (a block of a vocabulary projection), `bias` those rows' `[rows]`: → [.., rows].
    /// A frozen `whole` is packed once, whole, in `prepacked`, and blocks that start at a
    /// multiple of 32 rows read their columns of that packed form (bf16).
    pub fn forward_rows(x: &Tensor, whole: &Tensor, (first, rows): (usize, usize), bias: Option<&Tensor>, prepacked: Option<&Prepacked>) -> Result<Tensor> {
        let weight = whole.narrow(0, first, rows)?;
        Linear::forward_with(Bf16Kernel::for_level(super::level()), x, &weight, bias, prepacked.map(|p| (p, whole, first)), false)
    }

    /// [`Linear::forward`] with a given bf16 kernel; `prepacked`: the packed form's cache,
    /// the whole weight it packs, and the first row of `weight` in it; `gelu`: as
    /// [`Linear::forward_gelu`].
    fn forward_with(
        bf16: Option<Bf16Kernel>,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        prepacked: Option<(&Prepacked, &Tensor, usize)>,
        gelu: bool,
    ) -> Result<Tensor> {
        let x = x.contiguous()?;
        let transposed = column_major(weight)?;
        let weight = if transposed { weight.t()? } else { weight.contiguous()? };
        #[cfg(target_arch = "x86_64")]
        let packed = match prepacked {
            Some((p, whole, first)) if bf16.is_some() && weight.dtype() == DType::BF16 && weight.device().is_cpu() && first % bf16_views::PANEL == 0 => {
                let whole_transposed = column_major(whole)?;
                let whole = if whole_transposed { whole.t()? } else { whole.contiguous()? };
                Some((p.get(&whole, whole_transposed)?, first))
            }
            _ => None,
        };
        // A few f32 rows against a frozen weight, whole (not a block of its rows): its
        // panels, kept.
        #[cfg(target_arch = "x86_64")]
        let panels = match prepacked {
            Some((p, whole, 0)) if whole.elem_count() == weight.elem_count() => {
                let rows = x.elem_count() / x.dim(candle_core::D::Minus1)?.max(1);
                if weight.dtype() == DType::F32 && f32_skinny::takes(rows, true) { Some(p.panels(whole)?) } else { None }
            }
            _ => None,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = prepacked;
        let op = Linear {
            transposed,
            bf16,
            gelu,
            #[cfg(target_arch = "x86_64")]
            packed,
            #[cfg(target_arch = "x86_64")]
            panels,
        };
        match bias {
            Some(bias) => x.apply_op3(&weight, &bias.contiguous()?, op),
            None => x.apply_op2(&weight, op),
        }
    }

    /// `(rows, in, out)` of `x [.., in]` and the weight operand (`[out, in]`, or `[in,
    /// out]` when transposed), checked against `bias [out]`.
    fn geometry(&self, x: &Shape, weight: &Shape, bias: Option<&Shape>) -> Result<(usize, usize, usize)> {
        let (xd, wd) = (x.dims(), weight.dims());
        // (out, in) of the weight operand.
        let w = match *wd {
            [a, b] => Some(if self.transposed { (b, a) } else { (a, b) }),
            _ => None,
        };
        match (xd.last(), w) {
            (Some(&i), Some((o, wi))) if i == wi && bias.is_none_or(|b| b.dims() == [o]) => Ok((xd[..xd.len() - 1].iter().product(), i, o)),
            _ => candle_core::bail!("linear: x {xd:?}, weight {wd:?} and bias {:?} do not fit (expected [.., in], [out, in], [out])", bias.map(|b| b.dims())),
        }
    }

    /// `Wᵀ [in, out]` as a view of the weight operand `w`.
    fn w_t<'a>(&self, w: &'a [f32], (_, inp, out): (usize, usize, usize)) -> View<'a> {
        if self.transposed { View::rows(w, inp, out) } else { View::rows(w, out, inp).t() }
    }

    /// The bf16 kernel, or an error naming the op (bf16 operands without one).
    fn kernel(&self) -> Result<Bf16Kernel> {
        match self.bf16 {
            Some(k) => Ok(k),
            None => candle_core::bail!("linear: bf16 operands need a bf16 GEMM kernel (level avx512bf16 or amx), found level {}", super::level()),
        }
    }
}

/// bf16 operands as the kernels' `(row, k)` views: element `(i, k)` at `ptr[i·rs + k·cs]`.
#[cfg(target_arch = "x86_64")]
mod bf16_views {
    pub(super) use super::super::bf16_gemm::{Dst, Operand, PANEL, Packed, View};
    use half::bf16;

    pub(super) fn view(v: &[bf16], rs: usize, cs: usize) -> View {
        View { ptr: v.as_ptr(), rs, cs }
    }

    /// The forward's B operand `(o, i) = W[o, i]` of the weight operand `w` (`[out, in]`,
    /// or `Wᵀ [in, out]` when `transposed`).
    pub(super) fn w_oi(w: &[bf16], transposed: bool, (inp, out): (usize, usize)) -> View {
        if transposed { view(w, 1, out) } else { view(w, inp, 1) }
    }
}

/// Whether `weight` `[out, in]` is stored column-major (its transpose contiguous).
fn column_major(weight: &Tensor) -> Result<bool> {
    Ok(!weight.is_contiguous() && weight.t()?.is_contiguous())
}

/// The output's shape: `x`'s with the last dim `out`.
fn out_shape(x: &Shape, out: usize) -> Shape {
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("geometry checked rank ≥ 1") = out;
    Shape::from(dims)
}

fn fwd(op: &Linear, x: &[f32], w: &[f32], bias: Option<&[f32]>, (rows, inp, out): (usize, usize, usize)) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if f32_skinny::takes(rows, op.panels.is_some()) {
        // A few rows: a frozen weight's kept panels, or panels made for this call.
        return match &op.panels {
            Some(panels) => f32_skinny::product(x, rows, panels, (0, out), bias),
            None => f32_skinny::product_of(x, rows, f32_skinny::Weight { values: w, transposed: op.transposed, k: inp, n: out }, bias),
        };
    }
    let (xv, wt) = (View::rows(x, rows, inp), op.w_t(w, (rows, inp, out)));
    let Some(bias) = bias else { return new_product(xv, wt, Threads::All) };
    let chunk = vector::rows_per_task(rows, out) * out;
    // SAFETY: every chunk is written whole, a copy of the bias per row.
    let mut y = unsafe {
        vector::par_fill(rows * out, chunk, |_, yc| {
            for row in yc.chunks_mut(out) {
                for (y, &b) in row.iter_mut().zip(bias) {
                    y.write(b);
                }
            }
        })
    };
    product(&mut y, out, xv, wt, true, Threads::All);
    y
}

/// `(dx, dW)` for `dy [rows, out]`; `dW` in the weight operand's shape (`dWᵀ [in, out]`
/// when transposed).
fn grads(op: &Linear, x: &[f32], w: &[f32], dy: &[f32], (rows, inp, out): (usize, usize, usize)) -> (Vec<f32>, Vec<f32>) {
    let (dyv, xv) = (View::rows(dy, rows, out), View::rows(x, rows, inp));
    let dx = new_product(dyv, op.w_t(w, (rows, inp, out)).t(), Threads::All); // [rows, in]
    let dw = if op.transposed {
        new_product(xv.t(), dyv, Threads::All) // [in, out]
    } else {
        new_product(dyv.t(), xv, Threads::All) // [out, in]
    };
    (dx, dw)
}

fn slices<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    vector::contiguous::<f32>(s, l, "linear")
}

/// [`fwd`] in bf16: `x [rows, in]` times the weight read in place, bias added to the f32
/// sums.
#[cfg(target_arch = "x86_64")]
fn fwd_bf16(op: &Linear, x: &[bf16], w: &[bf16], bias: Option<&[bf16]>, (rows, inp, out): (usize, usize, usize)) -> Result<Vec<bf16>> {
    use bf16_views::{Dst, Operand, view, w_oi};
    // B(o, i) = W[o, i], read in place or packed before.
    let wv = match &op.packed {
        Some((p, first)) => Operand::Packed(p, *first),
        None => Operand::View(w_oi(w, op.transposed, (inp, out))),
    };
    let (kernel, xv, dims) = (op.kernel()?, view(x, inp, 1), (rows, out, inp));
    // SAFETY: the kernel is the level's (or a test's among those the CPU runs); the views
    // address rows x in and out x in elements of their slices (geometry checked).
    let out = if op.gelu { Dst::Bf16Gelu } else { Dst::Bf16 };
    Ok(unsafe { kernel.new_product(xv, wv, dims, bias, true, out) })
}

/// [`grads`] in bf16: `dx = dy · W` and `dW = dyᵀ · x` in the weight operand's layout.
#[cfg(target_arch = "x86_64")]
fn grads_bf16(op: &Linear, x: &[bf16], w: &[bf16], dy: &[bf16], (rows, inp, out): (usize, usize, usize)) -> Result<(Vec<bf16>, Vec<bf16>)> {
    use bf16_views::{Dst, Operand, view};
    let kernel = op.kernel()?;
    // B(i, o) = W[o, i]; A(o, r) = dy[r, o]; (i, r) = x[r, i].
    let w_io = Operand::View(if op.transposed { view(w, out, 1) } else { view(w, 1, inp) });
    let (dy_ro, dy_or, x_ir) = (view(dy, out, 1), view(dy, 1, out), view(x, 1, inp));
    // SAFETY: as in `fwd_bf16`; every view addresses its matrix inside its slice.
    unsafe {
        let dx = kernel.new_product(dy_ro, w_io, (rows, inp, out), None, true, Dst::Bf16); // [rows, in]
        let dw = if op.transposed {
            kernel.new_product(x_ir, Operand::View(dy_or), (inp, out, rows), None, true, Dst::Bf16) // [in, out]
        } else {
            kernel.new_product(dy_or, Operand::View(x_ir), (out, inp, rows), None, true, Dst::Bf16) // [out, in]
        };
        Ok((dx, dw))
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn fwd_bf16(op: &Linear, _: &[bf16], _: &[bf16], _: Option<&[bf16]>, _: (usize, usize, usize)) -> Result<Vec<bf16>> {
    op.kernel().map(|_| unreachable!("bf16 kernels exist only on x86-64"))
}

#[cfg(not(target_arch = "x86_64"))]
fn grads_bf16(op: &Linear, _: &[bf16], _: &[bf16], _: &[bf16], _: (usize, usize, usize)) -> Result<(Vec<bf16>, Vec<bf16>)> {
    op.kernel().map(|_| unreachable!("bf16 kernels exist only on x86-64"))
}

/// The forward on storages of either dtype.
fn cpu_forward(op: &Linear, (s1, l1): (&CpuStorage, &Layout), (s2, l2): (&CpuStorage, &Layout), bias: Option<(&CpuStorage, &Layout)>) -> Result<(CpuStorage, Shape)> {
    let g = op.geometry(l1.shape(), l2.shape(), bias.map(|(_, l)| l.shape()))?;
    let y = match s1 {
        CpuStorage::BF16(_) => {
            let b = bias.map(|(s, l)| vector::contiguous::<bf16>(s, l, "linear")).transpose()?;
            bf16::wrap(fwd_bf16(op, vector::contiguous(s1, l1, "linear")?, vector::contiguous(s2, l2, "linear")?, b, g)?)
        }
        _ if op.gelu => candle_core::bail!("linear+gelu: bf16 operands only, found {:?}", candle_core::backend::BackendStorage::dtype(s1)),
        _ => {
            let b = bias.map(|(s, l)| slices(s, l)).transpose()?;
            f32::wrap(fwd(op, slices(s1, l1)?, slices(s2, l2)?, b, g))
        }
    };
    Ok((y, out_shape(l1.shape(), g.2)))
}


/// `(dx, dW, db)` as tensors, `db` only when there is a bias.
fn backward(op: &Linear, x: &Tensor, w: &Tensor, dy: &Tensor, with_bias: bool) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    if op.gelu {
        candle_core::bail!("linear+gelu is for inference: it has no backward (trainable layers apply GELU as its own op)")
    }
    match x.dtype() {
        DType::BF16 => backward_as::<bf16>(op, (x, w, dy), with_bias, grads_bf16),
        _ => backward_as::<f32>(op, (x, w, dy), with_bias, |op, x, w, dy, g| Ok(grads(op, x, w, dy, g))),
    }
}

type Grads<E> = fn(&Linear, &[E], &[E], &[E], (usize, usize, usize)) -> Result<(Vec<E>, Vec<E>)>;

fn backward_as<E: Elem>(op: &Linear, (x, w, dy): (&Tensor, &Tensor, &Tensor), with_bias: bool, grads: Grads<E>) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let g = op.geometry(x.shape(), w.shape(), None)?;
    vector::with_elems::<E, _>(x, "linear", |xs| {
        vector::with_elems::<E, _>(w, "linear", |ws| {
            vector::with_elems::<E, _>(dy, "linear", |dys| {
                let (dx, dw) = grads(op, xs, ws, dys, g)?;
                let db = with_bias.then(|| vector::tensor(bias_grad(dys, g.2), &[g.2])).transpose()?;
                Ok((vector::tensor(dx, x.dims())?, vector::tensor(dw, w.dims())?, db))
            })
        })
    })
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        cpu_forward(self, (s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _b: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = backward(self, x, w, dy, true)?;
        Ok((Some(dx), Some(dw), db))
    }
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        cpu_forward(self, (s1, l1), (s2, l2), None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = backward(self, x, w, dy, false)?;
        Ok((Some(dx), Some(dw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn var(shape: &[usize], seed: u64) -> Var {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n as u64).map(|i| ((i * 7919 + seed * 104_729) % 256) as f32 / 64.0 - 2.0).collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-3);
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale
    }

    /// Values and the gradients of x, W and b equal candle's composed `x·Wᵀ + b` (matmul
    /// of the 2-D view, broadcast add), with and without the bias, on a 3-D x whose sizes
    /// are not multiples of the vector width.
    #[test]
    fn equals_the_composed_product() {
        let (x, w, b) = (var(&[3, 37, 70], 1), var(&[45, 70], 2), var(&[45], 3));
        let up = var(&[3, 37, 45], 4).as_tensor().clone();
        // The weight as stored, and column-major (a copy whose gradient flows back to w).
        let column_major = |w: &Tensor| w.t().unwrap().contiguous().unwrap().t().unwrap();
        assert!(!column_major(w.as_tensor()).is_contiguous());
        for (with_bias, transposed) in [(true, false), (false, false), (true, true), (false, true)] {
            let run = |fused: bool| {
                let y = if fused {
                    let wl = if transposed { column_major(w.as_tensor()) } else { w.as_tensor().clone() };
                    Linear::forward(x.as_tensor(), &wl, with_bias.then_some(b.as_tensor()), None).unwrap()
                } else {
                    let y = x.as_tensor().reshape((111, 70)).unwrap().matmul(&w.as_tensor().t().unwrap()).unwrap().reshape((3, 37, 45)).unwrap();
                    if with_bias { y.broadcast_add(b.as_tensor()).unwrap() } else { y }
                };
                let g = (&y * &up).unwrap().sum_all().unwrap().backward().unwrap();
                let mut out = vec![y, g.get(&x).unwrap().clone(), g.get(&w).unwrap().clone()];
                out.extend(with_bias.then(|| g.get(&b).unwrap().clone()));
                out
            };
            for (i, (f, p)) in run(true).iter().zip(&run(false)).enumerate() {
                assert_eq!(f.dims(), p.dims(), "output {i}");
                assert!(max_rel(f, p) < 2e-6, "bias {with_bias}, column-major {transposed}: output {i} (0 = value, then dx, dW, db) differs by {}", max_rel(f, p));
            }
        }
    }

    /// In bf16, on every bf16 kernel this machine runs (the AMX driver on the tile model
    /// included): values and the gradients of x, W and b within one bf16 rounding of the f32
    /// product of the same bf16 numbers, both weight layouts; the value never further from
    /// it than candle's composed bf16 form (product rounded, bias added, rounded again).
    #[test]
    fn bf16_is_the_f32_product_rounded_once() {
        let bf = |v: &Var| Var::from_tensor(&v.as_tensor().to_dtype(DType::BF16).unwrap()).unwrap();
        let (x, w, b) = (bf(&var(&[3, 37, 70], 1)), bf(&var(&[45, 70], 2)), bf(&var(&[45], 3)));
        let up = var(&[3, 37, 45], 4).as_tensor().to_dtype(DType::BF16).unwrap();
        let f32_of = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        // The f32 reference on the same (bf16-exact) numbers.
        let (xf, wf, bf_) = (Var::from_tensor(&f32_of(x.as_tensor())).unwrap(), Var::from_tensor(&f32_of(w.as_tensor())).unwrap(), Var::from_tensor(&f32_of(b.as_tensor())).unwrap());
        let y_ref = Linear::forward_with(None, xf.as_tensor(), wf.as_tensor(), Some(bf_.as_tensor()), None, false).unwrap();
        let g = (&y_ref * f32_of(&up)).unwrap().sum_all().unwrap().backward().unwrap();
        let reference = [y_ref.clone(), g.get(&xf).unwrap().clone(), g.get(&wf).unwrap().clone(), g.get(&bf_).unwrap().clone()];
        let composed = x.as_tensor().reshape((111, 70)).unwrap().matmul(&w.as_tensor().t().unwrap()).unwrap().reshape((3, 37, 45)).unwrap().broadcast_add(b.as_tensor()).unwrap();
        let composed_err = max_rel(&f32_of(&composed), &y_ref);
        for kernel in Bf16Kernel::here() {
            for transposed in [false, true] {
                let wl = if transposed { w.as_tensor().t().unwrap().contiguous().unwrap().t().unwrap() } else { w.as_tensor().clone() };
                let y = Linear::forward_with(Some(kernel), x.as_tensor(), &wl, Some(b.as_tensor()), None, false).unwrap();
                assert_eq!(y.dtype(), DType::BF16);
                let g = (&y * &up).unwrap().sum_all().unwrap().backward().unwrap();
                let got = [y.clone(), g.get(&x).unwrap().clone(), g.get(&w).unwrap().clone(), g.get(&b).unwrap().clone()];
                for (i, (f, r)) in got.iter().zip(&reference).enumerate() {
                    assert_eq!(f.dims(), r.dims(), "{kernel:?} output {i}");
                    let err = max_rel(&f32_of(f), r);
                    assert!(err < 1e-2, "{kernel:?}, column-major {transposed}: output {i} (0 = value, then dx, dW, db) differs by {err}");
                }
                let err = max_rel(&f32_of(&y), &y_ref);
                assert!(err <= composed_err, "{kernel:?}: value {err} further from f32 than the composed bf16 form ({composed_err})");
            }
        }
    }

    /// A frozen weight packed once gives bitwise the product of the weight packed per call,
    /// on every bf16 kernel here, both layouts, with and without bias, at its first product
    /// and at later ones (in = 70: 35 k-pairs, padded to 48 in the packed form).
    #[test]
    fn prepacked_weights_give_the_same_product() {
        let bf = |shape: &[usize], seed| var(shape, seed).as_tensor().to_dtype(DType::BF16).unwrap();
        let (x, w, b) = (bf(&[3, 37, 70], 1), bf(&[45, 70], 2), bf(&[45], 3));
        let bits = |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
        for kernel in Bf16Kernel::here() {
            for transposed in [false, true] {
                let wl = if transposed { w.t().unwrap().contiguous().unwrap().t().unwrap() } else { w.clone() };
                let prepacked = Prepacked::default();
                for bias in [Some(&b), None] {
                    let plain = bits(&Linear::forward_with(Some(kernel), &x, &wl, bias, None, false).unwrap());
                    for round in 0..2 {
                        let packed = bits(&Linear::forward_with(Some(kernel), &x, &wl, bias, Some((&prepacked, &wl, 0)), false).unwrap());
                        assert_eq!(packed, plain, "{kernel:?}, column-major {transposed}, bias {}, product {round}", bias.is_some());
                    }
                }
            }
        }
    }

    /// A frozen f32 weight's kept panels, column-major (as load_linear) or row-major (a tied
    /// decoder), give bitwise the product of panels made per call, at its first few-row
    /// product and at later ones, with and without bias, for a row count of one tile, of
    /// several and of the per-call limit; they are made once; past that limit they still
    /// serve (bitwise the kernel over the same panels, near the `gemm` crate's product) up
    /// to their own limit, and taller products (the `gemm` crate) do not make them. Only
    /// where the kernel level runs `f32_skinny` (AVX-512F).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kept_f32_panels_give_the_same_product() {
        if !f32_skinny::available() {
            eprintln!("skipped: this CPU (kernel level {}) has no AVX-512F", super::super::level());
            return;
        }
        let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (w, b) = (var(&[45, 300], 2).as_tensor().clone(), var(&[45], 3).as_tensor().clone());
        let column_major = w.t().unwrap().contiguous().unwrap().t().unwrap();
        for wl in [column_major, w.clone()] {
            let prepacked = Prepacked::default();
            let tallest = var(&[2, f32_skinny::KEPT_MAX_ROWS / 2 + 1, 300], 4).as_tensor().clone();
            Linear::forward(&tallest, &wl, Some(&b), Some(&prepacked)).unwrap();
            assert!(prepacked.panels.get().is_none(), "a product of {} rows made panels", f32_skinny::KEPT_MAX_ROWS + 2);
            for rows in [5, 37, f32_skinny::MAX_ROWS] {
                let x = var(&[rows, 300], rows as u64).as_tensor().clone();
                for bias in [Some(&b), None] {
                    let plain = bits(&Linear::forward(&x, &wl, bias, None).unwrap());
                    for round in 0..2 {
                        let kept = bits(&Linear::forward(&x, &wl, bias, Some(&prepacked)).unwrap());
                        assert_eq!(kept, plain, "{rows} rows, bias {}, product {round}", bias.is_some());
                    }
                }
            }
            let first = Arc::as_ptr(&prepacked.panels.get().expect("made by a few-row product").clone());
            let x = var(&[100, 300], 9).as_tensor().clone();
            let kept = bits(&Linear::forward(&x, &wl, Some(&b), Some(&prepacked)).unwrap());
            assert_eq!(Arc::as_ptr(prepacked.panels.get().unwrap()), first, "the panels were made again");
            let panels = f32_panels(&wl).unwrap();
            let direct = f32_skinny::product(&bits(&x), 100, &panels, (0, 45), Some(&bits(&b)));
            assert_eq!(kept, direct, "100 rows over kept panels");
            let gemm = bits(&Linear::forward(&x, &wl, Some(&b), None).unwrap());
            assert!(kept.iter().zip(&gemm).all(|(a, g)| (a - g).abs() <= 1e-4 * g.abs().max(1.0)), "100 rows: far from the gemm crate's product");
        }
    }

    /// The GELU epilogue is exact-erf GELU of the product as the same kernel rounds it
    /// (bias added to the f32 sums): on every bf16 kernel here, both layouts, per-call and
    /// prepacked weights, 99% of elements bitwise equal to candle's f32 `gelu_erf` of that
    /// product rounded to bf16, none more than one bf16 step apart (the vectorised erf is
    /// within 1.5e-7 of libm's); an empty contraction gives GELU of the bias. It has no
    /// backward, and says so.
    #[test]
    fn gelu_epilogue_is_gelu_of_the_rounded_product() {
        let bf = |shape: &[usize], seed| (var(shape, seed).as_tensor() * 3.0).unwrap().to_dtype(DType::BF16).unwrap();
        let (x, w, b) = (bf(&[3, 37, 70], 1), bf(&[45, 70], 2), bf(&[45], 3));
        let bits = |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
        let gelu_of = |t: &Tensor| t.to_dtype(DType::F32).unwrap().gelu_erf().unwrap().to_dtype(DType::BF16).unwrap();
        for kernel in Bf16Kernel::here() {
            for transposed in [false, true] {
                let wl = if transposed { w.t().unwrap().contiguous().unwrap().t().unwrap() } else { w.clone() };
                let prepacked = Prepacked::default();
                let want = bits(&gelu_of(&Linear::forward_with(Some(kernel), &x, &wl, Some(&b), None, false).unwrap()));
                for packed in [None, Some((&prepacked, &wl, 0))] {
                    let got = bits(&Linear::forward_with(Some(kernel), &x, &wl, Some(&b), packed, true).unwrap());
                    let same = got.iter().zip(&want).filter(|(g, w)| g == w).count();
                    assert!(same * 100 >= 99 * want.len(), "{kernel:?}, column-major {transposed}: {same} of {} equal", want.len());
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() <= w.abs().max(1e-30) / 128.0, "{kernel:?}: {g} vs {w}");
                    }
                }
            }
            let (x0, w0) = (Tensor::zeros((2, 0), DType::BF16, &Device::Cpu).unwrap(), Tensor::zeros((45, 0), DType::BF16, &Device::Cpu).unwrap());
            let empty = Linear::forward_with(Some(kernel), &x0, &w0, Some(&b), None, true).unwrap();
            assert_eq!(bits(&empty), [bits(&gelu_of(&b)), bits(&gelu_of(&b))].concat(), "{kernel:?}: empty contraction");
        }
        let x = Var::from_tensor(&x).unwrap();
        let kernel = Bf16Kernel::here()[0];
        let y = Linear::forward_with(Some(kernel), x.as_tensor(), &w, Some(&b), None, true).unwrap();
        let err = y.sum_all().unwrap().backward().unwrap_err().to_string();
        assert!(err.contains("inference"), "{err}");
        let err = Linear::forward_with(Some(kernel), &x.as_tensor().to_dtype(DType::F32).unwrap(), &w.to_dtype(DType::F32).unwrap(), None, None, true).unwrap_err();
        assert!(err.to_string().contains("bf16 operands only"), "{err}");
    }

    #[test]
    fn mismatched_shapes_are_an_error_naming_them() {
        let err = Linear::forward(var(&[4, 70], 1).as_tensor(), var(&[45, 69], 2).as_tensor(), None, None).unwrap_err().to_string();
        assert!(err.contains("[4, 70]") && err.contains("[45, 69]"), "{err}");
    }
}
