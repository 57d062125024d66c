//! A bidirectional Llama-style transformer, the network of LLaDA (`crate::llada`) and
//! Dream (`crate::dream`): token embeddings (no position embeddings), pre-RMSNorm layers
//! with rotary attention over every position (no causal mask), grouped-query heads and a
//! SwiGLU MLP, a final RMSNorm and an unbiased vocabulary projection. The two models differ
//! only in tensor names, biases on Q/K/V (Dream), the precision of the rotation (LLaDA
//! rotates in f32) and Dream's logit shift, which is applied here to the final hidden
//! states: the state handed out at position i is the network's output at i − 1 (position
//! 0 keeps its own), exactly what Dream's generation code does to its logits
//! (`torch.cat([logits[:, :1], logits[:, :-1]], 1)`), so every caller above the
//! [`crate::MaskedLm`] trait sees the distribution of the token at each position.
//!
//! Sequences run packed end to end (`[Σ len, hidden]`), each attending only to itself,
//! with positions `0..len` per sequence. The reference generation code passes no
//! attention mask, so ids equal to the padding id inside a sequence are attended to
//! (LLaDA's padding id is its end-of-text id, which generations contain); `encode` masks
//! only the keys its attention mask marks as padding.

mod cache;
mod layer;
mod rope;

use crate::config::Config;
use crate::dense::Linear;
use crate::elementwise::Keys;
use crate::encoder::attention_bias;
use crate::error::Result;
use crate::params::ParamBuilder;
use candle_core::{D, DType, Device, Tensor};
use layer::Layer;
use rope::Rope;
use std::sync::Arc;

/// The parameters of the network, by role; `name(part, layer)` gives the checkpoint's
/// name of each (without `.weight`/`.bias`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Embed,
    AttnNorm,
    Q,
    K,
    V,
    O,
    MlpNorm,
    Gate,
    Up,
    Down,
    FinalNorm,
    LmHead,
}

/// What LLaDA and Dream set differently.
pub(crate) struct LlamaConfig {
    pub heads: usize,
    pub kv_heads: usize,
    pub eps: f64,
    pub theta: f64,
    /// Biases on the Q, K and V projections (Dream).
    pub qkv_bias: bool,
    /// Rotate queries and keys in f32 whatever the compute dtype (LLaDA's
    /// `rope_full_precision`); else in the compute dtype with tables cast to it (Qwen2).
    pub rope_f32: bool,
    /// Hand out the output of position i − 1 at position i (Dream).
    pub shift: bool,
    pub name: fn(Part, usize) -> String,
}

impl LlamaConfig {
    pub fn tensor(&self, part: Part, layer: usize, suffix: &str) -> String {
        format!("{}.{suffix}", (self.name)(part, layer))
    }
}

/// An RMSNorm as LLaDA's `RMSLayerNorm` and Qwen2's `Qwen2RMSNorm` compute it: statistics
/// in f32, the normalised value cast back to the compute dtype, then scaled by the weight.
pub(crate) struct RmsNorm {
    weight: Tensor, // [hidden]
    eps: f64,
}

impl RmsNorm {
    fn load(pb: &ParamBuilder, name: String, size: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm { weight: pb.load(&name, std::slice::from_ref(&name), &[size])?, eps })
    }

    /// `x`: [..., hidden] → same shape
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let xf = x.to_dtype(DType::F32)?;
        let inv = (xf.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?.recip()?; // [..., 1]
        xf.broadcast_mul(&inv)?.to_dtype(x.dtype())?.broadcast_mul(&self.weight)
    }
}

/// `prefix.weight` [out, in] and, with `bias`, `prefix.bias` [out].
fn linear(pb: &ParamBuilder, m: &LlamaConfig, part: Part, layer: usize, (out, inp): (usize, usize), bias: bool) -> Result<Linear> {
    let w = m.tensor(part, layer, "weight");
    let weight = pb.load_linear(&w, std::slice::from_ref(&w), &[out, inp])?;
    let bias = if bias {
        let b = m.tensor(part, layer, "bias");
        Some(pb.load(&b, std::slice::from_ref(&b), &[out])?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias, pb.trainable)?)
}

/// Embeddings, layers and the final norm: ids → final hidden states (shifted for Dream).
pub(crate) struct Encoder {
    pub word: Tensor, // [vocab, hidden]
    layers: Vec<Layer>,
    norm: RmsNorm,
    rope: Rope,
    shift: bool,
}

impl Encoder {
    pub fn load(pb: &ParamBuilder, c: &Config, m: &LlamaConfig) -> Result<Encoder> {
        let h = c.hidden_size;
        let embed = m.tensor(Part::Embed, 0, "weight");
        let word = pb.load(&embed, std::slice::from_ref(&embed), &[c.vocab_size, h])?;
        let layers = (0..c.num_hidden_layers).map(|i| Layer::load(pb, c, m, i)).collect::<Result<Vec<_>>>()?;
        Ok(Encoder {
            word,
            layers,
            norm: RmsNorm::load(pb, m.tensor(Part::FinalNorm, 0, "weight"), h, m.eps)?,
            rope: Rope::new(m.theta, h / m.heads, m.rope_f32),
            shift: m.shift,
        })
    }

    /// The width of one position's keys (as of its values) in every layer: `kv_heads · head_dim`.
    pub fn kv_width(&self) -> usize {
        self.layers.first().map_or(0, Layer::kv_width)
    }

    /// `ids`: [batch, seq]; keys where `mask` is 0 are masked → [batch, seq, hidden]
    pub fn forward(&self, ids: &Tensor, mask: &Tensor, dtype: DType) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let bias = attention_bias(&mask.reshape((1, b * s))?, dtype, false, None)?.reshape(b * s)?; // [b·s]
        let hidden = self.run(&ids.flatten_all()?, &vec![s; b], bias)?; // [b·s, h]
        Ok(hidden.reshape((b, s, ()))?)
    }

    /// Sequences packed end to end, every id attended to: `rows` → [Σ len, hidden].
    pub fn forward_rows(&self, rows: &[&[u32]], dtype: DType, device: &Device) -> Result<Tensor> {
        let flat: Vec<u32> = rows.concat();
        let total = flat.len();
        let bias = Tensor::zeros(total, dtype, device)?;
        self.run(&Tensor::from_vec(flat, total, device)?, &rows.iter().map(|r| r.len()).collect::<Vec<_>>(), bias)
    }

    /// `ids` [N] of sequences of `lengths` end to end, `key_bias` [N] additive → [N, h].
    fn run(&self, ids: &Tensor, lengths: &[usize], key_bias: Tensor) -> Result<Tensor> {
        let positions: Vec<u32> = lengths.iter().flat_map(|&len| 0..len as u32).collect();
        let x = self.word.index_select(ids, 0)?; // [N, h]
        let (cos, sin) = self.rope.tables(&positions, x.dtype(), x.device())?; // [N, 1, d] each
        let keys = Keys::Packed { bias: key_bias, lengths: Arc::from(lengths) };
        let x = self.layers.iter().try_fold(x, |x, layer| layer.forward(&x, &keys, &cos, &sin))?;
        let x = self.norm.forward(&x)?;
        if !self.shift {
            return Ok(x);
        }
        // Dream: row i of each sequence takes the state of row i − 1 (its first keeps its own).
        let mut index = Vec::with_capacity(positions.len());
        let mut start = 0u32;
        for &len in lengths {
            index.extend((0..len as u32).map(|i| start + i.saturating_sub(1)));
            start += len as u32;
        }
        Ok(x.index_select(&Tensor::from_vec(index, positions.len(), x.device())?, 0)?)
    }
}

/// The vocabulary projection (`ff_out` / `lm_head`, no bias), tied to the embeddings when
/// the config says so.
pub(crate) struct Head {
    lm: Linear,
}

impl Head {
    pub fn load(pb: &ParamBuilder, c: &Config, m: &LlamaConfig, word: &Tensor) -> Result<Head> {
        let lm = if c.tie_word_embeddings {
            Linear::new(word.clone(), None, pb.trainable)?
        } else {
            linear(pb, m, Part::LmHead, 0, (c.vocab_size, c.hidden_size), false)?
        };
        Ok(Head { lm })
    }

    /// `hidden`: [..., hidden] → logits [..., vocab]
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.lm.forward(hidden)?)
    }

    /// `hidden`: [rows, hidden] → per row `(argmax, log p)` of the log-softmax of the
    /// logits with the id `excluded` forbidden (`kernels::vocab_reduce`; the projection
    /// has no bias: its zeros are added).
    pub fn project_argmax(&self, hidden: &Tensor, excluded: u32) -> Result<Vec<(u32, f32)>> {
        let d = &self.lm.dense;
        Ok(crate::kernels::vocab_reduce::project_argmax(hidden, d.weight(), d.bias(), excluded, d.prepacked())?)
    }
}
