//! One layer of the bidirectional Llama (LLaDA's `LLaDALlamaBlock`, Qwen2's decoder layer
//! without its causal mask), pre-norm:
//! `x += O(attention(rope(Q(n)), rope(K(n)), V(n)))` with `n = attn_norm(x)`, then
//! `x += Down(silu(Gate(m)) · Up(m))` with `m = mlp_norm(x)`. Keys and values of the
//! `kv_heads` heads serve `heads / kv_heads` query heads each (`repeat_interleave`).

use super::rope::Rope;
use super::{LlamaConfig, Part, RmsNorm, linear};
use crate::config::Config;
use crate::dense::Linear;
use crate::elementwise::{Keys, attention};
use crate::error::Result;
use crate::kernels::SwiGlu;
use crate::params::ParamBuilder;
use candle_core::{D, Tensor};

mod cached;

pub(crate) struct Layer {
    attn_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    /// Q, K and V side by side once, in a frozen model.
    qkv: Option<Linear>,
    o: Linear,
    mlp_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    /// Gate and Up side by side once, in a frozen model.
    gate_up: Option<Linear>,
    down: Linear,
    heads: usize,
    kv_heads: usize,
}

impl Layer {
    /// `kv_heads · head_dim`.
    pub fn kv_width(&self) -> usize {
        self.k.dense.weight().dim(0).unwrap_or(0)
    }

    pub fn load(pb: &ParamBuilder, c: &Config, m: &LlamaConfig, i: usize) -> Result<Layer> {
        let (h, f) = (c.hidden_size, c.intermediate_size);
        let kv = m.kv_heads * (h / m.heads);
        let q = linear(pb, m, Part::Q, i, (h, h), m.qkv_bias)?;
        let k = linear(pb, m, Part::K, i, (kv, h), m.qkv_bias)?;
        let v = linear(pb, m, Part::V, i, (kv, h), m.qkv_bias)?;
        let gate = linear(pb, m, Part::Gate, i, (f, h), false)?;
        let up = linear(pb, m, Part::Up, i, (f, h), false)?;
        let frozen = !pb.trainable;
        Ok(Layer {
            attn_norm: RmsNorm::load(pb, m.tensor(Part::AttnNorm, i, "weight"), h, m.eps)?,
            qkv: if frozen { Some(Linear::frozen_cat(&[&q, &k, &v])?) } else { None },
            q,
            k,
            v,
            o: linear(pb, m, Part::O, i, (h, h), false)?,
            mlp_norm: RmsNorm::load(pb, m.tensor(Part::MlpNorm, i, "weight"), h, m.eps)?,
            gate_up: if frozen { Some(Linear::frozen_cat(&[&gate, &up])?) } else { None },
            gate,
            up,
            down: linear(pb, m, Part::Down, i, (h, f), false)?,
            heads: m.heads,
            kv_heads: m.kv_heads,
        })
    }

    /// `x`: [N, hidden] (sequences packed as `keys` says); `cos`, `sin`: [N, 1, head_dim].
    pub fn forward(&self, x: &Tensor, keys: &Keys, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let (q, k, v) = self.rotated_qkv(x, cos, sin)?;
        let context = self.self_attention(&q, &k, &v, keys)?; // [N, h]
        self.finish(x, &context)
    }

    /// Q (rotated) [N, heads, d], K (rotated) and V [N, kv_heads, d] of `attn_norm(x)`.
    pub(super) fn rotated_qkv(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (n, h) = x.dims2()?;
        let d = h / self.heads;
        let normed = self.attn_norm.forward(x)?;
        let qkv = match &self.qkv {
            Some(qkv) => qkv.forward(&normed)?,
            None => Linear::forward_cat(&[&self.q, &self.k, &self.v], &normed)?,
        }; // [N, h + 2·kv·d]
        let kv = self.kv_heads * d;
        let q = Rope::apply(&qkv.narrow(1, 0, h)?.reshape((n, self.heads, d))?, cos, sin)?;
        let k = Rope::apply(&qkv.narrow(1, h, kv)?.reshape((n, self.kv_heads, d))?, cos, sin)?;
        let v = qkv.narrow(1, h + kv, kv)?.reshape((n, self.kv_heads, d))?;
        Ok((q, k, v))
    }

    /// Attention of packed sequences over their own keys (the fused kernel): `q`
    /// [N, heads, d], `k`, `v` [N, kv_heads, d] → context [N, h].
    pub(super) fn self_attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, keys: &Keys) -> Result<Tensor> {
        let (n, heads, d) = q.dims3()?;
        let h = heads * d;
        let (k, v) = (self.repeat_kv(k)?, self.repeat_kv(v)?); // [N, heads, d]
        let fused = Tensor::cat(&[q.reshape((n, h))?, k.reshape((n, h))?, v.reshape((n, h))?], 1)?; // [N, 3h]
        Ok(attention(&fused, keys, self.heads, None)?)
    }

    /// The rest of the layer after attention: `x += O(context)`, then the SwiGLU MLP.
    pub(super) fn finish(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let x = (x + self.o.forward(context)?)?;
        let normed = self.mlp_norm.forward(&x)?;
        let inner = match &self.gate_up {
            Some(gu) => {
                let both = gu.forward(&normed)?; // [N, 2f]
                if SwiGlu::applies(&both) {
                    SwiGlu::forward(&both)?
                } else {
                    let f = both.dim(D::Minus1)? / 2;
                    (both.narrow(D::Minus1, 0, f)?.silu()? * both.narrow(D::Minus1, f, f)?)?
                }
            }
            None => (self.gate.forward(&normed)?.silu()? * self.up.forward(&normed)?)?,
        }; // [N, f]
        Ok((x + self.down.forward(&inner)?)?)
    }

    /// [N, kv_heads, d] → [N, heads, d], each key/value head serving `heads / kv_heads`
    /// consecutive query heads.
    fn repeat_kv(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        if self.kv_heads == self.heads {
            return Ok(t.clone());
        }
        let (n, kv, d) = t.dims3()?;
        t.unsqueeze(2)?.broadcast_as((n, kv, self.heads / kv, d))?.reshape((n, self.heads, d))
    }
}
