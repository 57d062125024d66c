//! ModernBERT (`ModernBertForMaskedLM` of `transformers`): token embeddings + LayerNorm (no
//! positions), pre-LN layers with rotary attention, global every
//! `global_attn_every_n_layers` layers and within a sliding window of
//! `local_attention / 2` on either side otherwise, a GeGLU MLP, a final LayerNorm, and the
//! MLM head `decoder(norm(act(dense(x))))` with the decoder tied to the token embeddings
//! by default. Biases exist only where the config says (`attention_bias`, `mlp_bias`,
//! `norm_bias`, `classifier_bias`, `decoder_bias`). Tensors keep HF's names
//! (`model.layers.N.attn.Wqkv.weight`, `head.dense.weight`, `decoder.bias`, ...).
//! Computes what eager attention computes on a padded batch: positions `0..seq` in every
//! row, padding keys masked. `cached.rs` is the same forward over some positions of one
//! sequence with the other positions' (rotated) keys and values read from a KV cache.

mod cached;
mod config;
mod layer;

pub(crate) use config::ModernBertConfig;

use crate::config::{Activation, Config, Family};
pub(super) use crate::dense::Linear;
use crate::elementwise::Norm;
use crate::dropout::Dropout;
use crate::encoder::query_attention_bias;
use crate::error::Result;
use crate::names::{self, HeadPart, Name};
use crate::network::Pass;
use crate::params::ParamBuilder;
use crate::rotary::Rotary;
use candle_core::{DType, Module, Tensor};
use candle_nn::Embedding;
use layer::Layer;

/// An encoder tensor's name under the `model.` prefix.
fn name(n: &str) -> Name {
    names::encoder(Family::ModernBert, n)
}

/// `prefix.weight` [out, in] (fresh ~ N(0, std)) and, with `bias`, `prefix.bias` [out].
fn dense(
    pb: &ParamBuilder,
    prefix: &str,
    out: usize,
    inp: usize,
    bias: bool,
    std: f64,
) -> Result<Linear> {
    let w = name(&format!("{prefix}.weight"));
    let weight = pb.load_with_std(&w.canonical, &w.candidates, &[out, inp], std)?;
    let bias = if bias {
        Some(load(pb, name(&format!("{prefix}.bias")), out)?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias, pb.trainable)?)
}

/// `act(x)`, differentiable.
fn activate(act: Activation, x: &Tensor) -> candle_core::Result<Tensor> {
    match act {
        Activation::Gelu => x.gelu_erf(),
        Activation::GeluTanh => x.gelu(),
        Activation::Relu => x.relu(),
        Activation::Silu => x.silu(),
    }
}

fn load(pb: &ParamBuilder, n: Name, size: usize) -> Result<Tensor> {
    pb.load(&n.canonical, &n.candidates, &[size])
}

/// A LayerNorm `prefix.weight` (+ `prefix.bias` with `norm_bias`; else a zero bias that is
/// no parameter).
fn norm(pb: &ParamBuilder, prefix: &str, size: usize, m: &ModernBertConfig) -> Result<Norm> {
    layer_norm(
        pb,
        name(&format!("{prefix}.weight")),
        name(&format!("{prefix}.bias")),
        size,
        m,
    )
}

fn layer_norm(
    pb: &ParamBuilder,
    weight: Name,
    bias: Name,
    size: usize,
    m: &ModernBertConfig,
) -> Result<Norm> {
    let weight = load(pb, weight, size)?;
    let bias = if m.norm_bias {
        load(pb, bias, size)?
    } else {
        Tensor::zeros(size, pb.dtype, &pb.device)?
    };
    Ok(Norm::new(weight, bias, m.norm_eps))
}

/// Embeddings, layers and the final norm: ids → final hidden states.
pub(crate) struct Encoder {
    pub word: Tensor, // [vocab, hidden]
    embedding_norm: Norm,
    layers: Vec<Layer>,
    final_norm: Norm,
    config: ModernBertConfig,
    head_dim: usize,
}

impl Encoder {
    pub fn load(pb: &ParamBuilder, c: &Config, m: &ModernBertConfig) -> Result<Encoder> {
        let w = name(Family::ModernBert.word_embeddings());
        let word = pb.load(&w.canonical, &w.candidates, &[c.vocab_size, c.hidden_size])?;
        Ok(Encoder {
            word,
            embedding_norm: norm(pb, "embeddings.norm", c.hidden_size, m)?,
            layers: (0..c.num_hidden_layers)
                .map(|i| Layer::load(pb, c, m, i))
                .collect::<Result<_>>()?,
            final_norm: norm(pb, "final_norm", c.hidden_size, m)?,
            config: m.clone(),
            head_dim: c.head_dim(),
        })
    }

    /// `ids`: [batch, seq] → [batch, seq, hidden] after `final_norm`.
    pub fn forward(&self, ids: &Tensor, pass: &Pass) -> Result<Tensor> {
        let positions: Vec<usize> = (0..ids.dim(1)?).collect();
        let inputs = self.layer_inputs(pass.mask, &positions, pass.causal, pass.dtype)?;
        let mut x = self.embed(ids, pass.drop)?;
        for layer in &self.layers {
            let (bias, rotary) = inputs.of(layer);
            x = layer.forward(&x, bias, rotary, pass.drop)?;
        }
        Ok(self.final_norm.forward(&x)?)
    }

    /// `ids`: [batch, n] → `embedding_norm(word[ids])` with embedding dropout,
    /// [batch, n, hidden] (no position embeddings: every token on its own).
    fn embed(&self, ids: &Tensor, drop: &Dropout) -> Result<Tensor> {
        let hidden = self.word.dim(1)?;
        let x = Embedding::new(self.word.clone(), hidden).forward(ids)?;
        Ok(drop.apply(&self.embedding_norm.forward(&x)?, self.config.embedding_dropout)?)
    }

    /// The attention inputs of both kinds of layer for the queries at `positions` (n of
    /// them) of sequences whose keys `mask` [batch, len] (1: real, 0: padding) says.
    fn layer_inputs(
        &self,
        mask: &Tensor,
        positions: &[usize],
        causal: bool,
        dtype: DType,
    ) -> Result<LayerInputs> {
        let m = &self.config;
        let rotary = |theta: f64| {
            Rotary::at(theta, self.head_dim, positions.iter().copied(), dtype, mask.device())
        };
        let global_bias = query_attention_bias(mask, dtype, causal, None, positions)?; // [b, 1, 1|n, len]
        let local = if self.layers.iter().any(|l| !l.global) {
            let window = Some(m.local_attention / 2);
            let bias = query_attention_bias(mask, dtype, causal, window, positions)?; // [b, 1, n, len]
            Some((bias, rotary(m.local_theta())?))
        } else {
            None
        };
        Ok(LayerInputs {
            global_bias,
            global_rotary: rotary(m.global_rope_theta)?,
            local,
        })
    }
}

/// What the layers' attention takes for the queries at some positions: each kind's
/// additive bias and rotary tables (of those positions, which rotate queries and keys).
struct LayerInputs {
    global_bias: Tensor, // [batch, 1, 1 or n, len]: padding (and causal) only
    global_rotary: Rotary,
    /// The local layers' bias [batch, 1, n, len] (padding and the sliding window) and
    /// tables; `None` when every layer is global.
    local: Option<(Tensor, Rotary)>,
}

impl LayerInputs {
    /// The bias and rotary tables of `layer`'s kind.
    fn of(&self, layer: &Layer) -> (&Tensor, &Rotary) {
        match (&self.local, layer.global) {
            (Some((bias, rotary)), false) => (bias, rotary),
            _ => (&self.global_bias, &self.global_rotary),
        }
    }
}

/// The MLM head (`ModernBertPredictionHead` + `decoder`).
pub(crate) struct Head {
    dense: Linear,
    norm: Norm,
    decoder: Linear,
    act: Activation,
}

impl Head {
    /// Loads the head, tying the decoder to `word` [vocab, hidden] when the config says so.
    pub fn load(
        pb: &ParamBuilder,
        c: &Config,
        m: &ModernBertConfig,
        word: &Tensor,
    ) -> Result<Head> {
        let (h, v) = (c.hidden_size, c.vocab_size);
        let part = |p| names::head(Family::ModernBert, p);
        let std_out = pb.std() / (2.0 * c.num_hidden_layers as f64).sqrt();
        let matrix = |p, rows: usize| {
            let n = part(p);
            pb.load_with_std(&n.canonical, &n.candidates, &[rows, h], std_out)
        };
        let bias = |on: bool, p, size| {
            if on {
                load(pb, part(p), size).map(Some)
            } else {
                Ok(None)
            }
        };
        let dense = Linear::new(
            matrix(HeadPart::DenseWeight, h)?,
            bias(m.classifier_bias, HeadPart::DenseBias, h)?,
            pb.trainable,
        )?;
        let norm = layer_norm(
            pb,
            part(HeadPart::NormWeight),
            part(HeadPart::NormBias),
            h,
            m,
        )?;
        let weight = if c.tie_word_embeddings {
            word.clone()
        } else {
            matrix(HeadPart::DecoderWeight, v)?
        };
        let decoder = Linear::new(weight, bias(m.decoder_bias, HeadPart::DecoderBias, v)?, pb.trainable)?;
        Ok(Head {
            dense,
            norm,
            decoder,
            act: m.classifier_activation,
        })
    }

    /// `hidden`: [..., hidden] → logits [..., vocab]
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let x = activate(self.act, &self.dense.forward(hidden)?)?;
        Ok(self.decoder.forward(&self.norm.forward(&x)?)?)
    }
}
