//! One ModernBERT layer (`ModernBertEncoderLayer`), pre-LN:
//! `x += Wo(attention(rotary(Wqkv(attn_norm(x)))))`, then `x += mlp(mlp_norm(x))` with the
//! GeGLU MLP `Wo(act(input) · gate)`, `[input, gate] = Wi(x)`. Layer 0 has no `attn_norm`
//! (an `Identity` in `transformers`, so no tensor). Attention is eager `transformers`'
//! semantics on the padded batch: the caller passes the additive bias of this layer's kind
//! (global: padding only; local: padding and the sliding window) and the rotary tables of
//! its theta.

use super::config::ModernBertConfig;
use super::{Linear, activate, dense, norm};
use crate::config::{Activation, Config};
use crate::dropout::Dropout;
use crate::elementwise::{Norm, attention_probs};
use crate::error::Result;
use crate::kernels;
use crate::params::ParamBuilder;
use crate::rotary::Rotary;
use candle_core::{D, Tensor};

pub(crate) struct Layer {
    attn_norm: Option<Norm>,
    wqkv: Linear,
    attn_out: Linear,
    mlp_norm: Norm,
    wi: Linear,
    mlp_out: Linear,
    heads: usize,
    /// Attends to the whole sequence (else to the sliding window).
    pub global: bool,
    act: Activation,
    attention_dropout: f64,
    mlp_dropout: f64,
}

impl Layer {
    pub fn load(pb: &ParamBuilder, c: &Config, m: &ModernBertConfig, i: usize) -> Result<Layer> {
        let (h, f) = (c.hidden_size, c.intermediate_size);
        // HF's init: inputs normal(0, range), outputs normal(0, range / √(2·layers)).
        let (std_in, std_out) = (
            pb.std(),
            pb.std() / (2.0 * c.num_hidden_layers as f64).sqrt(),
        );
        let p = |n: &str| format!("layers.{i}.{n}");
        Ok(Layer {
            attn_norm: if i == 0 {
                None
            } else {
                Some(norm(pb, &p("attn_norm"), h, m)?)
            },
            wqkv: dense(pb, &p("attn.Wqkv"), 3 * h, h, m.attention_bias, std_in)?,
            attn_out: dense(pb, &p("attn.Wo"), h, h, m.attention_bias, std_out)?,
            mlp_norm: norm(pb, &p("mlp_norm"), h, m)?,
            wi: dense(pb, &p("mlp.Wi"), 2 * f, h, m.mlp_bias, std_in)?,
            mlp_out: dense(pb, &p("mlp.Wo"), h, f, m.mlp_bias, std_out)?,
            heads: c.num_attention_heads,
            global: m.is_global(i),
            act: m.hidden_activation,
            attention_dropout: m.attention_dropout,
            mlp_dropout: m.mlp_dropout,
        })
    }

    /// `x`: [batch, seq, hidden]; `bias`: [batch, 1, 1 or seq, seq] additive mask;
    /// `rotary`: the tables of this layer's theta for `seq` positions.
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        rotary: &Rotary,
        drop: &Dropout,
    ) -> Result<Tensor> {
        let (q, k, v) = self.rotated_qkv(x, rotary)?;
        let context = self.attend(&q, &k, &v, bias, drop)?; // [b, s, h]
        self.finish(x, &context, drop)
    }

    /// Q and K rotated by `rotary` (the tables of `x`'s positions) and V of
    /// `attn_norm(x)`: `x` [batch, n, hidden] → [batch, heads, n, head_dim] each.
    pub(super) fn rotated_qkv(
        &self,
        x: &Tensor,
        rotary: &Rotary,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, n, h) = x.dims3()?;
        let d = h / self.heads;
        let normed = match &self.attn_norm {
            Some(norm) => norm.forward(x)?,
            None => x.clone(),
        };
        let qkv = self.wqkv.forward(&normed)?; // [b, n, 3h] = [q | k | v], each [heads, d]
        let part = |i: usize| {
            qkv.narrow(2, i * h, h)?
                .reshape((b, n, self.heads, d))?
                .transpose(1, 2)
        }; // [b, heads, n, d]
        let (q, k) = (rotary.apply(&part(0)?)?, rotary.apply(&part(1)?)?);
        Ok((q, k, part(2)?))
    }

    /// Scaled dot-product attention of `q` [batch, heads, n, d] over `k`, `v`
    /// [batch, heads, len, d] with the additive `bias` [batch, 1, 1 or n, len] and
    /// attention dropout → context [batch, n, heads·d].
    pub(super) fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: &Tensor,
        drop: &Dropout,
    ) -> Result<Tensor> {
        let (b, heads, n, d) = q.dims4()?;
        let scores = kernels::strided_matmul(q, &k.t()?)?; // [b, heads, n, len]
        let scale = 1.0 / (d as f64).sqrt();
        let probs = attention_probs(&scores, bias, scale, drop.mask(self.attention_dropout))?;
        Ok(kernels::strided_matmul(&probs, v)?
            .transpose(1, 2)?
            .reshape((b, n, heads * d))?) // [b, n, h]
    }

    /// The rest of the layer after attention: `x += Wo(context)`, then the GeGLU MLP
    /// `x += Wo(act(input) · gate)` of `mlp_norm(x)`. `x`, `context`: [batch, n, hidden].
    pub(super) fn finish(&self, x: &Tensor, context: &Tensor, drop: &Dropout) -> Result<Tensor> {
        let attended = drop.apply(&self.attn_out.forward(context)?, self.attention_dropout)?;
        let x = (x + attended)?;
        let projected = self.wi.forward(&self.mlp_norm.forward(&x)?)?; // [b, n, 2·ffn]
        let f = projected.dim(D::Minus1)? / 2;
        let (input, gate) = (
            projected.narrow(D::Minus1, 0, f)?,
            projected.narrow(D::Minus1, f, f)?,
        );
        let inner = drop.apply(&(activate(self.act, &input)? * gate)?, self.mlp_dropout)?; // [b, n, ffn]
        Ok((x + self.mlp_out.forward(&inner)?)?)
    }
}
