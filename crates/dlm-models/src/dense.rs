//! A fully connected layer `y = x · Wᵀ + b` (HF `nn.Linear`: weight `[out, in]`) over the
//! last dim: the fused [`kernels::Linear`] op where it applies (f32, and bf16 where the
//! kernel level has a bf16 GEMM), else one 2-D matrix product over all leading dims
//! through [`kernels::matmul`] and a bias add. `forward_cat` applies
//! several layers that read the same input as one product (fused Q/K/V): the weights are
//! concatenated on every call, so the optimizer's in-place updates are always seen.

use crate::kernels;
use candle_core::{Result, Tensor};

pub(crate) struct Dense {
    weight: Tensor, // [out, in]
    bias: Tensor,   // [out]
}

impl Dense {
    pub fn new(weight: Tensor, bias: Tensor) -> Dense {
        Dense { weight, bias }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `x`: [..., in] → [..., out]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        affine(x, &self.weight, &self.bias)
    }

    /// `x · Wᵀ` without the bias (for the fused sublayers that add it themselves):
    /// [..., in] → [..., out]
    pub fn product(&self, x: &Tensor) -> Result<Tensor> {
        product(x, &self.weight)
    }

    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// `x`: [..., in] → [..., Σ out] = the outputs of `layers` side by side.
    pub fn forward_cat(layers: &[&Dense], x: &Tensor) -> Result<Tensor> {
        let column_major = layers.iter().all(|l| !l.weight.is_contiguous());
        let weight = if column_major {
            // Column-major weights (`ParamBuilder::load_linear`) stay column-major.
            let ts = layers.iter().map(|l| l.weight.t()).collect::<Result<Vec<_>>>()?; // [in, out] each
            Tensor::cat(&ts, 1)?.t()? // [Σ out, in], column-major
        } else {
            Tensor::cat(&layers.iter().map(|l| &l.weight).collect::<Vec<_>>(), 0)? // [Σ out, in]
        };
        let bias = Tensor::cat(&layers.iter().map(|l| &l.bias).collect::<Vec<_>>(), 0)?; // [Σ out]
        affine(x, &weight, &bias)
    }
}

/// `x [..., in] · weight [out, in]ᵀ + bias [out]`
fn affine(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if kernels::Linear::applies(x, weight) {
        return kernels::Linear::forward(x, weight, Some(bias));
    }
    crate::elementwise::bias_add(&product(x, weight)?, bias)
}

/// `x [..., in] · weight [out, in]ᵀ`, as one 2-D product over all leading dims.
fn product(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    if kernels::Linear::applies(x, weight) {
        return kernels::Linear::forward(x, weight, None);
    }
    let dims = x.dims();
    let (inp, rows) = (dims[dims.len() - 1], x.elem_count() / dims[dims.len() - 1].max(1));
    let y = kernels::matmul(&x.reshape((rows, inp))?, &weight.t()?)?; // [rows, out]
    let mut out = dims.to_vec();
    *out.last_mut().expect("rank >= 1") = weight.dim(0)?;
    y.reshape(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Module, Var};

    /// Fused Q/K/V equals three separate candle `Linear`s, values and gradients, f32.
    #[test]
    fn forward_cat_equals_separate_linears() {
        let dev = Device::Cpu;
        let var = |shape: &[usize], seed: u64| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|i| ((i as u64 * 7919 + seed * 104729) % 1000) as f32 / 500.0 - 1.0).collect();
            Var::from_tensor(&Tensor::from_vec(v, shape, &dev).unwrap()).unwrap()
        };
        let x = var(&[2, 5, 8], 1);
        let params: Vec<(Var, Var)> = (0..3).map(|i| (var(&[6, 8], 2 + i), var(&[6], 5 + i))).collect();
        let layers: Vec<Dense> = params.iter().map(|(w, b)| Dense::new(w.as_tensor().clone(), b.as_tensor().clone())).collect();
        let up = var(&[2, 5, 18], 9).as_tensor().clone();
        let fused = Dense::forward_cat(&layers.iter().collect::<Vec<_>>(), &x).unwrap(); // [2, 5, 18]
        let plain = Tensor::cat(
            &params
                .iter()
                .map(|(w, b)| candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone())).forward(&x).unwrap())
                .collect::<Vec<_>>(),
            2,
        )
        .unwrap();
        let diff = |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff(&fused, &plain) < 1e-6, "{}", diff(&fused, &plain));
        let gf = (&fused * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (&plain * &up).unwrap().sum_all().unwrap().backward().unwrap();
        for v in std::iter::once(&x).chain(params.iter().flat_map(|(w, b)| [w, b])) {
            let (a, b) = (gf.get(v).unwrap(), gp.get(v).unwrap());
            assert!(diff(a, b) < 1e-5, "{}", diff(a, b));
        }
        assert_eq!(fused.dtype(), DType::F32);
    }
}
