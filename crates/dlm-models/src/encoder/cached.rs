//! The BERT family's cached forward ([`crate::MaskedLm::encode_cached`]): one sequence,
//! the positions asked for computed afresh through the post-LN layers, the keys and values
//! of the others read from a [`KvCache`]. Position embeddings are absolute (each position
//! keeps the id the whole sequence gives it, RoBERTa's padding offset included) and keys
//! equal to the padding id are masked, as [`crate::MaskedLm::encode_rows`] does.

use super::{Embeddings, Layer, attention_bias};
use crate::dropout::Dropout;
use crate::elementwise::{Keys, attention};
use crate::error::Result;
use crate::kv_cache::{KvCache, cross_attention, gather, runs, splice};
use candle_core::{DType, Device, Tensor};
use std::ops::Range;
use std::sync::Arc;

/// `ids`: one sequence; `fresh`: the positions whose final states are returned
/// ([count, hidden] in order), as ascending runs. `fresh` covering the whole sequence is the
/// packed forward of `Body::forward_rows` for `[ids]` and fills `cache`; otherwise `cache`
/// must hold this sequence's length, and it is updated at `fresh`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_cached(
    embeddings: &Embeddings,
    layers: &[Layer],
    ids: &[u32],
    pad: u32,
    fresh: &[Range<usize>],
    cache: &mut KvCache,
    dtype: DType,
    drop: &Dropout,
    device: &Device,
) -> Result<Tensor> {
    let len = ids.len();
    let fresh = runs(fresh, len)?;
    let fill = cache.fills(&fresh, len, layers.len())?;
    let real: Vec<u32> = ids.iter().map(|&id| u32::from(id != pad)).collect();
    let bias = attention_bias(&Tensor::from_vec(real, (1, len), device)?, dtype, false, None)?.reshape(len)?; // [len]
    // Embeddings of the whole sequence (cheap), so every position keeps its position id.
    let all = Tensor::from_slice(ids, len, device)?;
    let x = embeddings.forward_rows(&all, &[ids], drop)?; // [len, h]
    let mut x = if fill { x } else { gather(&x, &fresh)? };
    let mut kv = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let past = if fill { None } else { Some(&cache.layers[i]) };
        let (y, pair) = layer.forward_cached(&x, &fresh, len, past, &bias, drop)?;
        x = y;
        kv.push(pair);
    }
    cache.len = len;
    cache.layers = kv;
    Ok(x)
}

impl Layer {
    /// `x`: [n, hidden], the states of positions `rows` (ascending runs) of a sequence of
    /// `len`; `past`:
    /// this layer's cached (keys, values) `[len, heads, head_dim]`, or `None` when `rows` is
    /// the whole sequence (attention as [`Layer::forward`] runs it); `key_bias` [len]
    /// additive. Returns the new states and the keys and values of the whole sequence.
    fn forward_cached(
        &self,
        x: &Tensor,
        rows: &[Range<usize>],
        len: usize,
        past: Option<&(Tensor, Tensor)>,
        key_bias: &Tensor,
        drop: &Dropout,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let (n, h) = x.dims2()?;
        let d = h / self.heads;
        let qkv = match &self.qkv {
            Some(qkv) => qkv.forward(x)?,
            None => crate::dense::Dense::forward_cat(&[&self.query, &self.key, &self.value], x)?,
        }; // [n, 3h]
        let k = qkv.narrow(1, h, h)?.reshape((n, self.heads, d))?;
        let v = qkv.narrow(1, 2 * h, h)?.reshape((n, self.heads, d))?;
        let (context, keys, values) = match past {
            None => {
                let keys = Keys::Packed { bias: key_bias.clone(), lengths: Arc::from([n]) };
                (attention(&qkv, &keys, self.heads, drop.mask(self.attention_dropout))?, k, v)
            }
            Some((past_k, past_v)) => {
                let keys = splice(past_k, &k, rows, len)?;
                let values = splice(past_v, &v, rows, len)?;
                let q = qkv.narrow(1, 0, h)?.reshape((n, self.heads, d))?;
                (cross_attention(&q, &keys, &values, Some(key_bias))?, keys, values)
            }
        }; // context [n, h]
        let out = self.attention_out.product(&context)?;
        let x = self.attention_norm.forward_add(&out, Some(self.attention_out.bias()), Some(x), drop.mask(self.hidden_dropout))?;
        let inner = self.intermediate.forward_act(self.act, &x)?; // [n, ffn]
        let out = self.output.product(&inner)?;
        let x = self.output_norm.forward_add(&out, Some(self.output.bias()), Some(&x), drop.mask(self.hidden_dropout))?;
        Ok((x, (keys.contiguous()?, values.contiguous()?)))
    }
}
