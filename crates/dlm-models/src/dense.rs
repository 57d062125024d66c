//! A fully connected layer `y = x · Wᵀ + b` (HF `nn.Linear`: weight `[out, in]`) over the
//! last dim: the fused [`kernels::Linear`] op where it applies (f32, and bf16 where the
//! kernel level has a bf16 GEMM), else one 2-D matrix product over all leading dims
//! through [`kernels::matmul`] and a bias add. `forward_cat` applies
//! several layers that read the same input as one product (fused Q/K/V): the weights are
//! concatenated on every call, so the optimizer's in-place updates are always seen; a
//! frozen model concatenates them once (`Dense::frozen_cat`). A frozen layer also keeps
//! its bf16 weight packed for the kernels after the first product ([`kernels::Prepacked`]),
//! and applies GELU as its product's epilogue (`Dense::forward_act`).

use crate::config::Activation;
use crate::kernels;
use candle_core::{Result, Tensor};

pub(crate) struct Dense {
    weight: Tensor, // [out, in]
    bias: Tensor,   // [out]
    /// Frozen layers only: the packed bf16 weight (never changes once packed).
    prepacked: Option<kernels::Prepacked>,
}

impl Dense {
    /// A layer whose weight may change in place (trainable).
    pub fn new(weight: Tensor, bias: Tensor) -> Dense {
        Dense { weight, bias, prepacked: None }
    }

    /// A layer whose weight never changes (inference): its packed bf16 form is kept.
    pub fn frozen(weight: Tensor, bias: Tensor) -> Dense {
        Dense { weight, bias, prepacked: Some(kernels::Prepacked::default()) }
    }

    /// [`Dense::new`] for a trainable model, [`Dense::frozen`] for an inference one.
    pub fn for_model(weight: Tensor, bias: Tensor, trainable: bool) -> Dense {
        if trainable { Dense::new(weight, bias) } else { Dense::frozen(weight, bias) }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `x`: [..., in] → [..., out]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        affine(x, &self.weight, &self.bias, self.prepacked.as_ref())
    }

    /// `x · Wᵀ` without the bias (for the fused sublayers that add it themselves):
    /// [..., in] → [..., out]
    pub fn product(&self, x: &Tensor) -> Result<Tensor> {
        product(x, &self.weight, self.prepacked.as_ref())
    }

    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// `act(x · Wᵀ + b)`: [..., in] → [..., out]. A frozen bf16 layer applies exact-erf
    /// GELU as the product's epilogue ([`kernels::Linear::forward_gelu`]); other layers
    /// (trainable ones, whose backward needs the product) write the product and apply the
    /// fused bias + activation op to it.
    pub fn forward_act(&self, act: Activation, x: &Tensor) -> Result<Tensor> {
        if act == Activation::Gelu && self.prepacked.is_some() && kernels::Linear::gelu_applies(x, &self.weight) {
            return kernels::Linear::forward_gelu(x, &self.weight, &self.bias, self.prepacked.as_ref());
        }
        crate::elementwise::bias_act(act, &self.product(x)?, &self.bias)
    }

    /// A frozen layer's packed bf16 weight (for products over blocks of its rows).
    pub fn prepacked(&self) -> Option<&kernels::Prepacked> {
        self.prepacked.as_ref()
    }

    /// `x`: [..., in] → [..., Σ out] = the outputs of `layers` side by side.
    pub fn forward_cat(layers: &[&Dense], x: &Tensor) -> Result<Tensor> {
        let (weight, bias) = concat(layers)?;
        affine(x, &weight, &bias, None)
    }

    /// `layers` side by side as one frozen layer `[Σ out, in]`: [`Dense::forward_cat`]
    /// with the concatenation done once.
    pub fn frozen_cat(layers: &[&Dense]) -> Result<Dense> {
        let (weight, bias) = concat(layers)?;
        Ok(Dense::frozen(weight, bias))
    }
}

/// The weights `[Σ out, in]` and biases `[Σ out]` of `layers` side by side.
fn concat(layers: &[&Dense]) -> Result<(Tensor, Tensor)> {
    let column_major = layers.iter().all(|l| !l.weight.is_contiguous());
    let weight = if column_major {
        // Column-major weights (`ParamBuilder::load_linear`) stay column-major.
        let ts = layers.iter().map(|l| l.weight.t()).collect::<Result<Vec<_>>>()?; // [in, out] each
        Tensor::cat(&ts, 1)?.t()? // [Σ out, in], column-major
    } else {
        Tensor::cat(&layers.iter().map(|l| &l.weight).collect::<Vec<_>>(), 0)? // [Σ out, in]
    };
    let bias = Tensor::cat(&layers.iter().map(|l| &l.bias).collect::<Vec<_>>(), 0)?; // [Σ out]
    Ok((weight, bias))
}

/// `x [..., in] · weight [out, in]ᵀ + bias [out]`
fn affine(x: &Tensor, weight: &Tensor, bias: &Tensor, prepacked: Option<&kernels::Prepacked>) -> Result<Tensor> {
    if kernels::Linear::applies(x, weight) {
        return kernels::Linear::forward(x, weight, Some(bias), prepacked);
    }
    crate::elementwise::bias_add(&product(x, weight, None)?, bias)
}

/// `x [..., in] · weight [out, in]ᵀ`, as one 2-D product over all leading dims.
fn product(x: &Tensor, weight: &Tensor, prepacked: Option<&kernels::Prepacked>) -> Result<Tensor> {
    if kernels::Linear::applies(x, weight) {
        return kernels::Linear::forward(x, weight, None, prepacked);
    }
    let dims = x.dims();
    let (inp, rows) = (dims[dims.len() - 1], x.elem_count() / dims[dims.len() - 1].max(1));
    let y = kernels::matmul(&x.reshape((rows, inp))?, &weight.t()?)?; // [rows, out]
    let mut out = dims.to_vec();
    *out.last_mut().expect("rank >= 1") = weight.dim(0)?;
    y.reshape(out)
}

/// A linear layer whose bias the config may leave out: `x·Wᵀ (+ b)`.
pub(crate) struct Linear {
    /// Without a bias, `dense` holds a zero bias that is never added (and is no parameter).
    pub dense: Dense,
    has_bias: bool,
}

impl Linear {
    /// `weight`: [out, in]; `bias`: [out]; `trainable` as [`Dense::for_model`].
    pub fn new(weight: Tensor, bias: Option<Tensor>, trainable: bool) -> Result<Linear> {
        let has_bias = bias.is_some();
        let bias = match bias {
            Some(b) => b,
            None => Tensor::zeros(weight.dim(0)?, weight.dtype(), weight.device())?,
        };
        Ok(Linear {
            dense: Dense::for_model(weight, bias, trainable),
            has_bias,
        })
    }

    /// `x`: [..., in] → [..., out]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.has_bias { self.dense.forward(x) } else { self.dense.product(x) }
    }

    /// `layers` side by side as one frozen layer `[Σ out, in]` (biased if any is; the
    /// others' biases are zeros).
    pub fn frozen_cat(layers: &[&Linear]) -> Result<Linear> {
        let dense = Dense::frozen_cat(&layers.iter().map(|l| &l.dense).collect::<Vec<_>>())?;
        Ok(Linear { dense, has_bias: layers.iter().any(|l| l.has_bias) })
    }

    /// `x`: [..., in] → [..., Σ out], the outputs of `layers` side by side (weights
    /// concatenated on every call, so in-place updates are seen).
    pub fn forward_cat(layers: &[&Linear], x: &Tensor) -> Result<Tensor> {
        Dense::forward_cat(&layers.iter().map(|l| &l.dense).collect::<Vec<_>>(), x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Module, Var};

    /// `[shape]` f32 values in [-1, 1) from a fixed pattern.
    fn pattern(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((i as u64 * 7919 + seed * 104729) % 1000) as f32 / 500.0 - 1.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Fused Q/K/V equals three separate candle `Linear`s, values and gradients, f32.
    #[test]
    fn forward_cat_equals_separate_linears() {
        let var = |shape: &[usize], seed: u64| Var::from_tensor(&pattern(shape, seed)).unwrap();
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

    /// The frozen concatenation (done once, weights packed on the first bf16 product)
    /// equals the per-call one bitwise, in f32 (row- and column-major weights) and bf16.
    #[test]
    fn frozen_cat_equals_forward_cat() {
        for (dtype, column_major) in [(DType::F32, false), (DType::F32, true), (DType::BF16, false)] {
            let x = pattern(&[2, 5, 40], 1).to_dtype(dtype).unwrap();
            let layer = |i: u64| {
                let w = pattern(&[24, 40], 2 + i).to_dtype(dtype).unwrap();
                let w = if column_major { w.t().unwrap().contiguous().unwrap().t().unwrap() } else { w };
                Dense::new(w, pattern(&[24], 5 + i).to_dtype(dtype).unwrap())
            };
            let layers = [layer(0), layer(1), layer(2)];
            let refs: Vec<&Dense> = layers.iter().collect();
            let bits = |y: Tensor| y.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
            let plain = bits(Dense::forward_cat(&refs, &x).unwrap());
            let frozen = Dense::frozen_cat(&refs).unwrap();
            for round in 0..2 {
                assert_eq!(bits(frozen.forward(&x).unwrap()), plain, "{dtype:?}, column-major {column_major}, call {round}");
            }
        }
    }

    /// A trainable layer's products see its weight change in place (the optimizer's
    /// updates); a frozen one's packed form would not. Meaningful where the level has a
    /// bf16 kernel (the packed form is used only there).
    #[test]
    fn trainable_layers_see_in_place_updates() {
        let bf = |shape: &[usize], seed| pattern(shape, seed).to_dtype(DType::BF16).unwrap();
        let (x, b) = (bf(&[2, 5, 8], 1), bf(&[6], 3));
        let w = Var::from_tensor(&bf(&[6, 8], 2)).unwrap();
        let layer = Dense::for_model(w.as_tensor().clone(), b.clone(), true);
        layer.forward(&x).unwrap(); // a first product (it would pack a frozen weight)
        w.set(&bf(&[6, 8], 9)).unwrap();
        let bits = |t: Tensor| t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
        let fresh = Dense::new(w.as_tensor().copy().unwrap(), b).forward(&x).unwrap();
        assert_eq!(bits(layer.forward(&x).unwrap()), bits(fresh));
    }
}
