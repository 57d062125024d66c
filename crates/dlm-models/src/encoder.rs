//! The BERT-family encoder (SPEC §1): embeddings (word + position + token type 0, then
//! LayerNorm) and post-LN transformer layers with full bidirectional attention over the
//! non-padding positions. BERT, RoBERTa and XLM-R share this code; they differ only in
//! where position ids start (RoBERTa/XLM-R: `padding_idx + 1`, pads keep `padding_idx`).
//! Q, K and V are one matrix product (`Dense::forward_cat`; concatenated once at load in a
//! frozen model, `Dense::frozen_cat`) that the fused attention op
//! reads in place (`elementwise::attention`: scores, mask, softmax, dropout and the
//! product with V, per head, never writing `[b, heads, s, s]`); matrix products go through
//! `kernels::matmul`; bias + GELU and bias + dropout + residual + LayerNorm are fused ops
//! too (see docs/performance.md).

use crate::config::{Activation, Config, Family};
use crate::dense::Dense;
use crate::dropout::Dropout;
use crate::error::Result;
use crate::names;
use crate::params::ParamBuilder;
use candle_core::{DType, Module, Tensor};
use crate::elementwise::{Keys, Norm, attention};
use candle_nn::Embedding;

mod cached;
pub(crate) use cached::forward_cached;

fn linear(pb: &ParamBuilder, family: Family, prefix: &str, out: usize, inp: usize) -> Result<Dense> {
    let w = names::encoder(family, &format!("{prefix}.weight"));
    let b = names::encoder(family, &format!("{prefix}.bias"));
    let weight = pb.load_linear(&w.canonical, &w.candidates, &[out, inp])?;
    let bias = pb.load(&b.canonical, &b.candidates, &[out])?;
    Ok(Dense::for_model(weight, bias, pb.trainable))
}

fn layer_norm(pb: &ParamBuilder, family: Family, prefix: &str, size: usize, eps: f64) -> Result<Norm> {
    let w = names::encoder(family, &format!("{prefix}.weight"));
    let b = names::encoder(family, &format!("{prefix}.bias"));
    let weight = pb.load(&w.canonical, &w.candidates, &[size])?;
    let bias = pb.load(&b.canonical, &b.candidates, &[size])?;
    Ok(Norm::new(weight, bias, eps))
}

pub(crate) struct Embeddings {
    pub word: Tensor,  // [vocab, hidden]
    position: Tensor,  // [max_positions, hidden]
    token_type: Tensor, // [hidden]: row 0, as no token types are ever given
    norm: Norm,
    /// RoBERTa/XLM-R: the padding id positions are counted from.
    offset_from: Option<u32>,
    dropout: f64,
}

impl Embeddings {
    pub fn load(pb: &ParamBuilder, family: Family, c: &Config) -> Result<Embeddings> {
        let get = |n: &str, shape: &[usize]| {
            let name = names::encoder(family, &format!("embeddings.{n}"));
            pb.load(&name.canonical, &name.candidates, shape)
        };
        let word = get("word_embeddings.weight", &[c.vocab_size, c.hidden_size])?;
        let position = get("position_embeddings.weight", &[c.max_position_embeddings, c.hidden_size])?;
        let token_type = get("token_type_embeddings.weight", &[c.type_vocab_size, c.hidden_size])?.get(0)?;
        let norm = layer_norm(pb, family, "embeddings.LayerNorm", c.hidden_size, c.layer_norm_eps)?;
        let offset_from = family.offset_positions().then(|| c.pad_id());
        Ok(Embeddings { word, position, token_type, norm, offset_from, dropout: c.hidden_dropout_prob })
    }

    /// `ids`: [batch, seq] u32 → [batch, seq, hidden]
    pub fn forward(&self, ids: &Tensor, drop: &Dropout) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let positions = match self.offset_from {
            // HF create_position_ids_from_input_ids: cumsum(ids != pad) * (ids != pad) + pad,
            // on the ids' device (no host round trip). The running count is an f32 matmul
            // against a triangle of ones: exact, as counts stay far below 2^24.
            Some(pad) => {
                let real = ids.ne(pad)?.to_dtype(DType::F32)?; // [batch, seq]
                let count = real.cumsum(1)?; // [batch, seq]
                ((count * real)? + f64::from(pad))?.to_dtype(DType::U32)?
            }
            None => Tensor::arange(0u32, s as u32, ids.device())?.unsqueeze(0)?.repeat((b, 1))?,
        };
        self.embed(ids, &positions, drop)
    }

    /// Sequences packed end to end (see [`crate::MaskedLm::encode_rows`]): `ids` [Σ len]
    /// u32 on the device, `rows` the same ids per sequence on the host → [Σ len, hidden].
    /// Position ids as [`Embeddings::forward`] gives each sequence alone.
    pub fn forward_rows(&self, ids: &Tensor, rows: &[&[u32]], drop: &Dropout) -> Result<Tensor> {
        let mut positions = Vec::with_capacity(ids.elem_count());
        for row in rows {
            match self.offset_from {
                Some(pad) => {
                    let mut count = 0;
                    positions.extend(row.iter().map(|&id| {
                        count += u32::from(id != pad);
                        if id == pad { pad } else { count + pad }
                    }));
                }
                None => positions.extend(0..row.len() as u32),
            }
        }
        let positions = Tensor::from_vec(positions, ids.elem_count(), ids.device())?; // [Σ len]
        self.embed(ids, &positions, drop)
    }

    /// word + position + token type 0, LayerNorm, dropout: ids and position ids [...] → [..., hidden]
    fn embed(&self, ids: &Tensor, positions: &Tensor, drop: &Dropout) -> Result<Tensor> {
        let hidden = self.word.dims()[1];
        let word = Embedding::new(self.word.clone(), hidden).forward(ids)?;
        let position = Embedding::new(self.position.clone(), hidden).forward(positions)?;
        let x = self.norm.forward_add(&word, Some(&self.token_type), Some(&position), None)?;
        Ok(drop.apply(&x, self.dropout)?)
    }
}

pub(crate) struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    /// Q, K and V side by side once, in a frozen model.
    qkv: Option<Dense>,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
    heads: usize,
    act: Activation,
    hidden_dropout: f64,
    attention_dropout: f64,
}

impl Layer {
    pub fn load(pb: &ParamBuilder, family: Family, c: &Config, i: usize) -> Result<Layer> {
        let (h, f, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        let p = |n: &str| format!("encoder.layer.{i}.{n}");
        let query = linear(pb, family, &p("attention.self.query"), h, h)?;
        let key = linear(pb, family, &p("attention.self.key"), h, h)?;
        let value = linear(pb, family, &p("attention.self.value"), h, h)?;
        let qkv = if pb.trainable { None } else { Some(Dense::frozen_cat(&[&query, &key, &value])?) };
        Ok(Layer {
            query,
            key,
            value,
            qkv,
            attention_out: linear(pb, family, &p("attention.output.dense"), h, h)?,
            attention_norm: layer_norm(pb, family, &p("attention.output.LayerNorm"), h, eps)?,
            intermediate: linear(pb, family, &p("intermediate.dense"), f, h)?,
            output: linear(pb, family, &p("output.dense"), h, f)?,
            output_norm: layer_norm(pb, family, &p("output.LayerNorm"), h, eps)?,
            heads: c.num_attention_heads,
            act: c.hidden_act,
            hidden_dropout: c.hidden_dropout_prob,
            attention_dropout: c.attention_probs_dropout_prob,
        })
    }

    /// `x`: [batch, seq, hidden], or [Σ len, hidden] for packed `keys`.
    pub fn forward(&self, x: &Tensor, keys: &Keys, drop: &Dropout) -> Result<Tensor> {
        let qkv = match &self.qkv {
            Some(qkv) => qkv.forward(x)?,
            None => Dense::forward_cat(&[&self.query, &self.key, &self.value], x)?,
        }; // [b, s, 3h]
        let context = attention(&qkv, keys, self.heads, drop.mask(self.attention_dropout))?; // [b, s, h]
        let out = self.attention_out.product(&context)?;
        let x = self.attention_norm.forward_add(&out, Some(self.attention_out.bias()), Some(x), drop.mask(self.hidden_dropout))?;
        let inner = self.intermediate.forward_act(self.act, &x)?; // [b, s, ffn]
        let out = self.output.product(&inner)?;
        Ok(self.output_norm.forward_add(&out, Some(self.output.bias()), Some(&x), drop.mask(self.hidden_dropout))?)
    }
}

/// Additive attention bias from a [batch, seq] 0/1 mask: 0 where attended, the dtype's
/// most negative value at padding (as `transformers` does), shaped [batch, 1, 1, seq];
/// with `causal`, also at every key after the query, and with `window = Some(w)` at every
/// key more than `w` positions from the query (ModernBERT's local layers): [batch, 1, seq,
/// seq]. A query that may attend to nothing gets a finite bias everywhere, so its softmax
/// stays uniform and finite (as in `transformers`).
pub(crate) fn attention_bias(mask: &Tensor, dtype: DType, causal: bool, window: Option<usize>) -> Result<Tensor> {
    let queries: Vec<usize> = (0..mask.dim(1)?).collect();
    query_attention_bias(mask, dtype, causal, window, &queries)
}

/// [`attention_bias`] for the queries at the positions `queries` (n of them) only: with
/// `causal` or a `window`, [batch, 1, n, seq], row i that of query position `queries[i]`;
/// else [batch, 1, 1, seq] as there (a key-only bias is the same for every query).
pub(crate) fn query_attention_bias(
    mask: &Tensor,
    dtype: DType,
    causal: bool,
    window: Option<usize>,
    queries: &[usize],
) -> Result<Tensor> {
    let min = match dtype {
        DType::BF16 => f64::from(half::bf16::MIN),
        DType::F16 => f64::from(half::f16::MIN),
        _ => f64::from(f32::MIN),
    };
    let keep = mask.to_dtype(DType::F32)?.unsqueeze(1)?.unsqueeze(1)?; // [b, 1, 1, s]
    let keep = if causal || window.is_some() {
        let (n, s) = (queries.len(), mask.dim(1)?);
        let allowed = |q: usize, k: usize| (!causal || k <= q) && window.is_none_or(|w| q.abs_diff(k) <= w);
        let pairs: Vec<f32> =
            queries.iter().flat_map(|&q| (0..s).map(move |k| if allowed(q, k) { 1.0 } else { 0.0 })).collect();
        let pairs = Tensor::from_vec(pairs, (1, 1, n, s), mask.device())?;
        keep.broadcast_mul(&pairs)? // [b, 1, n, s]
    } else {
        keep
    };
    Ok(((keep - 1.0)? * -min)?.to_dtype(dtype)?)
}
