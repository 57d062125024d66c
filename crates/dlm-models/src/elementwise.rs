//! The encoder's elementwise sublayers, each one fused CPU kernel with a backward pass
//! (`kernels`), or on other devices and dtypes the same maths composed from candle ops
//! (which keep the autograd graph too; candle-nn's own fused `layer_norm` and
//! `softmax_last_dim` have no backward, so they are never used here):
//! - [`Norm::forward_add`]: `LayerNorm(dropout(x + x_bias) + residual)`;
//! - [`bias_act`]: `act(x + bias)`;
//! - [`attention_probs`]: `dropout(softmax(scale·scores + mask))`;
//! - [`attention`]: `attention_probs(q·kᵀ) · v` per head, from the fused Q/K/V product;
//! - [`bias_add`]: `x + bias`.

use crate::config::Activation;
use crate::kernels::{self, AddNorm, Attention, BiasAdd, BiasGelu, DropMask, MaskedSoftmax};
use candle_core::{D, DType, Result, Tensor};
use std::sync::Arc;

/// Whether the fused CPU kernels apply to `t`.
pub(crate) fn fused(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::BF16) && kernels::fused_enabled()
}

/// LayerNorm over the last dimension with weight and bias.
pub(crate) struct Norm {
    weight: Tensor, // [hidden]
    bias: Tensor,   // [hidden]
    eps: f64,
}

impl Norm {
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Norm {
        Norm { weight, bias, eps }
    }

    /// `x`: [..., hidden] → same shape; statistics in f32 whatever the dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_add(x, None, None, None)
    }

    /// `LayerNorm(drop(x + x_bias) + residual)`; `x`, `residual`: [..., hidden],
    /// `x_bias`: [hidden].
    pub fn forward_add(&self, x: &Tensor, x_bias: Option<&Tensor>, residual: Option<&Tensor>, drop: Option<DropMask>) -> Result<Tensor> {
        if fused(x) { self.fused_add(x, x_bias, residual, drop) } else { self.plain_add(x, x_bias, residual, drop) }
    }

    fn fused_add(&self, x: &Tensor, x_bias: Option<&Tensor>, residual: Option<&Tensor>, drop: Option<DropMask>) -> Result<Tensor> {
        {
            let zeros;
            let x_bias = match x_bias {
                Some(b) => b,
                None => {
                    zeros = self.bias.zeros_like()?;
                    &zeros
                }
            };
            let params = Tensor::stack(&[x_bias, &self.weight, &self.bias], 0)?; // [3, hidden]
            AddNorm { eps: self.eps as f32, drop }.forward(x, residual, &params)
        }
    }

    fn plain_add(&self, x: &Tensor, x_bias: Option<&Tensor>, residual: Option<&Tensor>, drop: Option<DropMask>) -> Result<Tensor> {
        let mut s = match x_bias {
            Some(b) => x.broadcast_add(b)?,
            None => x.clone(),
        };
        if let Some(d) = drop {
            s = d.apply(&s)?;
        }
        if let Some(r) = residual {
            s = (s + r)?;
        }
        let dtype = s.dtype();
        let s = s.to_dtype(DType::F32)?;
        let centred = s.broadcast_sub(&s.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?.to_dtype(dtype)?;
        normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// `x + bias`; `x`: [..., n], `bias`: [n].
pub(crate) fn bias_add(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if fused(x) { BiasAdd::forward(x, bias) } else { x.broadcast_add(bias) }
}

/// `act(x + bias)`; `x`: [..., f], `bias`: [f].
pub(crate) fn bias_act(act: Activation, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if act == Activation::Gelu && fused(x) { BiasGelu::forward(x, bias) } else { plain_bias_act(act, x, bias) }
}

fn plain_bias_act(act: Activation, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let z = x.broadcast_add(bias)?;
    match act {
        Activation::Gelu => z.gelu_erf(),
        Activation::GeluTanh => z.gelu(),
        Activation::Relu => z.relu(),
        Activation::Silu => z.silu(),
    }
}

/// `drop(softmax(scale·scores + mask))`; `scores`: [b, heads, q, k], `mask`: additive,
/// [b, 1, 1 or q, k].
pub(crate) fn attention_probs(scores: &Tensor, mask: &Tensor, scale: f64, drop: Option<DropMask>) -> Result<Tensor> {
    if fused(scores) {
        MaskedSoftmax { scale: scale as f32, drop }.forward(scores, mask)
    } else {
        plain_attention_probs(scores, mask, scale, drop)
    }
}

fn plain_attention_probs(scores: &Tensor, mask: &Tensor, scale: f64, drop: Option<DropMask>) -> Result<Tensor> {
    let probs = candle_nn::ops::softmax(&(scores * scale)?.broadcast_add(mask)?, D::Minus1)?;
    match drop {
        Some(d) => d.apply(&probs),
        None => Ok(probs),
    }
}

/// The keys each query of a self-attention call may see.
pub(crate) enum Keys {
    /// A rectangular batch, `qkv` [b, s, 3h]: the additive mask [b, 1, 1 or s, s].
    Padded(Tensor),
    /// Sequences packed end to end, `qkv` [Σ len, 3h]: sequence n is the `lengths[n]` rows
    /// after those before it and sees only its own keys; `bias` [Σ len] is the additive
    /// mask of each key (padding ids inside a sequence).
    Packed { bias: Tensor, lengths: Arc<[usize]> },
}

/// Multi-head self-attention from the fused Q/K/V product: `qkv` [b, s, 3h] or packed
/// [Σ len, 3h] (q | k | v, `heads` heads of h / heads columns each, see [`Keys`]), scale
/// 1/√d, attention dropout `drop` → [b, s, h] or [Σ len, h].
pub(crate) fn attention(qkv: &Tensor, keys: &Keys, heads: usize, drop: Option<DropMask>) -> Result<Tensor> {
    let d = qkv.dim(D::Minus1)? / 3 / heads.max(1);
    let scale = 1.0 / (d as f64).sqrt();
    match keys {
        Keys::Padded(mask) if fused(qkv) => Attention::new(heads, scale as f32, drop, None).forward(qkv, mask),
        Keys::Padded(mask) => plain_attention(qkv, mask, heads, scale, drop),
        Keys::Packed { bias, lengths } if fused(qkv) => {
            Attention::new(heads, scale as f32, drop, Some(lengths.clone())).forward(qkv, bias)
        }
        Keys::Packed { .. } if drop.is_some() => {
            candle_core::bail!("attention: packed sequences take no dropout off the fused CPU kernel")
        }
        Keys::Packed { bias, lengths } => plain_packed_attention(qkv, bias, lengths, heads, scale),
    }
}

/// [`Keys::Packed`] composed: each sequence alone through [`plain_attention`].
fn plain_packed_attention(qkv: &Tensor, bias: &Tensor, lengths: &[usize], heads: usize, scale: f64) -> Result<Tensor> {
    let mut parts = Vec::with_capacity(lengths.len());
    let mut start = 0;
    for &len in lengths {
        let mask = bias.narrow(0, start, len)?.reshape((1, 1, 1, len))?;
        let out = plain_attention(&qkv.narrow(0, start, len)?.unsqueeze(0)?, &mask, heads, scale, None)?; // [1, len, h]
        parts.push(out.squeeze(0)?);
        start += len;
    }
    Tensor::cat(&parts, 0) // [Σ len, h]
}

fn plain_attention(qkv: &Tensor, mask: &Tensor, heads: usize, scale: f64, drop: Option<DropMask>) -> Result<Tensor> {
    let (b, s, h3) = qkv.dims3()?;
    let (h, d) = (h3 / 3, h3 / 3 / heads);
    // [b, s, 3h] → [b, heads, s, d]
    let part = |i: usize| qkv.narrow(2, i * h, h)?.reshape((b, s, heads, d))?.transpose(1, 2)?.contiguous();
    let scores = part(0)?.matmul(&part(1)?.t()?)?; // [b, heads, s, s]
    let probs = plain_attention_probs(&scores, mask, scale, drop)?;
    probs.matmul(&part(2)?)?.transpose(1, 2)?.reshape((b, s, h)) // [b, s, h]
}

#[cfg(test)]
mod tests;
