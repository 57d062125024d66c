//! `y = x · Wᵀ + b` (HF `nn.Linear`, weight `[out, in]`) on f32 CPU tensors as one candle
//! op with its backward pass, computed on slices by the f32 GEMM ([`f32_gemm`]):
//! - `x [.., in]` and `y [.., out]` are read and written in place, so the graph has no
//!   reshape nodes around the product, and `W` is read transposed in place (no transpose
//!   node): each node of candle's graph costs a zeroed gradient buffer and an add pass in
//!   the backward, which made gradient accumulation 15% of a training step;
//! - the bias is the product's initial value (PyTorch's `addmm` does the same), not a
//!   separate pass; without a bias, the product is written once, never zeroed first.
//!
//! Backward: `dx = dy · W`, `dW = dyᵀ · x`, `db = Σrows dy`.
//!
//! `W` may also be stored **column-major** (its transpose `[in, out]` contiguous, as
//! `ParamBuilder::load_linear` lays out an f32 inference model's weights): the GEMM then
//! reads `Wᵀ` with unit column stride, which the `gemm` crate multiplies up to about 17%
//! faster on BERT-base's shapes (`examples/gemm_bench.rs`, `column_major_gflops`). Both
//! layouts give the same `y`.

use super::bias_add::bias_grad;
use super::f32_gemm::{Threads, View, new_product, product};
use super::vector::{self, Elem};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// `x · Wᵀ (+ b)` for f32 CPU tensors (see the module docs). `transposed`: the op's
/// weight operand is `Wᵀ [in, out]` (contiguous), not `W [out, in]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linear {
    transposed: bool,
}

impl Linear {
    /// `x`: [.., in], `weight`: [out, in] (row- or column-major), `bias`: [out] → [.., out].
    pub fn forward(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let x = x.contiguous()?;
        let transposed = !weight.is_contiguous() && weight.t()?.is_contiguous();
        let (weight, op) = (if transposed { weight.t()? } else { weight.contiguous()? }, Linear { transposed });
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
            (Some(&i), Some((o, wi))) if i == wi && bias.is_none_or(|b| b.dims() == [o]) => Ok((x.elem_count() / i.max(1), i, o)),
            _ => candle_core::bail!("linear: x {xd:?}, weight {wd:?} and bias {:?} do not fit (expected [.., in], [out, in], [out])", bias.map(|b| b.dims())),
        }
    }

    /// `Wᵀ [in, out]` as a view of the weight operand `w`.
    fn w_t<'a>(&self, w: &'a [f32], (_, inp, out): (usize, usize, usize)) -> View<'a> {
        if self.transposed { View::rows(w, inp, out) } else { View::rows(w, out, inp).t() }
    }
}

/// The output's shape: `x`'s with the last dim `out`.
fn out_shape(x: &Shape, out: usize) -> Shape {
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("geometry checked rank ≥ 1") = out;
    Shape::from(dims)
}

fn fwd(op: Linear, x: &[f32], w: &[f32], bias: Option<&[f32]>, (rows, inp, out): (usize, usize, usize)) -> Vec<f32> {
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
fn grads(op: Linear, x: &[f32], w: &[f32], dy: &[f32], (rows, inp, out): (usize, usize, usize)) -> (Vec<f32>, Vec<f32>) {
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

/// `(dx, dW, db)` as tensors, `db` only when there is a bias.
fn backward(op: Linear, x: &Tensor, w: &Tensor, dy: &Tensor, with_bias: bool) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let g = op.geometry(x.shape(), w.shape(), None)?;
    vector::with_elems::<f32, _>(x, "linear", |xs| {
        vector::with_elems::<f32, _>(w, "linear", |ws| {
            vector::with_elems::<f32, _>(dy, "linear", |dys| {
                let (dx, dw) = grads(op, xs, ws, dys, g);
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
        let g = self.geometry(l1.shape(), l2.shape(), Some(l3.shape()))?;
        let y = fwd(*self, slices(s1, l1)?, slices(s2, l2)?, Some(slices(s3, l3)?), g);
        Ok((f32::wrap(y), out_shape(l1.shape(), g.2)))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _b: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = backward(*self, x, w, dy, true)?;
        Ok((Some(dx), Some(dw), db))
    }
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry(l1.shape(), l2.shape(), None)?;
        Ok((f32::wrap(fwd(*self, slices(s1, l1)?, slices(s2, l2)?, None, g)), out_shape(l1.shape(), g.2)))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = backward(*self, x, w, dy, false)?;
        Ok((Some(dx), Some(dw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

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
                    Linear::forward(x.as_tensor(), &wl, with_bias.then_some(b.as_tensor())).unwrap()
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

    #[test]
    fn mismatched_shapes_are_an_error_naming_them() {
        let err = Linear::forward(var(&[4, 70], 1).as_tensor(), var(&[45, 69], 2).as_tensor(), None).unwrap_err().to_string();
        assert!(err.contains("[4, 70]") && err.contains("[45, 69]"), "{err}");
    }
}
