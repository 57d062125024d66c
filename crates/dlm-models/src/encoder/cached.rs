//! The BERT family's cached forward ([`crate::MaskedLm::encode_cached_rows`], and
//! [`crate::MaskedLm::encode_cached`] as its one-row case): the positions asked for of
//! each sequence computed afresh through the post-LN layers, the keys and values of the
//! others read from the sequence's [`KvCache`]. The rows are packed: embeddings, Q/K/V,
//! the output projection, the FFN and the layer norms run once over every row's fresh
//! positions stacked `[Σ n, hidden]`; only attention (a row's fresh queries against its own
//! keys and values) and the cache splice are per row. Position embeddings are absolute
//! (each position keeps the id the whole sequence gives it, RoBERTa's padding offset
//! included) and keys equal to the padding id are masked, as
//! [`crate::MaskedLm::encode_rows`] does.

use super::{Embeddings, Layer, attention_bias};
use crate::dropout::Dropout;
use crate::elementwise::{Keys, attention};
use crate::error::Result;
use crate::kv_cache::{CachedRow, cross_attention, gather, runs, splice, through_layers};
use candle_core::{DType, Device, Tensor};
use std::ops::Range;
use std::sync::Arc;

/// One row of a packed cached forward, checked against its cache.
struct Fresh {
    /// The positions computed, normalised ascending runs, and how many they are.
    runs: Vec<Range<usize>>,
    n: usize,
    /// The sequence's length.
    len: usize,
    /// Whether `runs` is the whole sequence (a full forward that fills the cache).
    fill: bool,
    /// The additive bias of each key [len] (padding ids masked).
    bias: Tensor,
}

/// `rows`: sequences, each with the positions whose final states are returned (as
/// ascending runs) and its cache → `[Σ fresh, hidden]`, row by row in order. A row whose
/// fresh runs cover its whole sequence is the packed forward of `Body::forward_rows` for
/// its ids and fills its cache; any other's cache must hold its sequence's length, and is
/// updated at its fresh positions. Every row is checked before any cache changes.
pub(crate) fn forward_cached(
    embeddings: &Embeddings,
    layers: &[Layer],
    rows: &mut [CachedRow<'_>],
    pad: u32,
    dtype: DType,
    drop: &Dropout,
    device: &Device,
) -> Result<Tensor> {
    let fresh = rows
        .iter()
        .map(|row| {
            let len = row.ids.len();
            let runs = runs(row.fresh, len)?;
            let fill = row.cache.fills(&runs, len, layers.len())?;
            let real: Vec<u32> = row.ids.iter().map(|&id| u32::from(id != pad)).collect();
            let bias = attention_bias(&Tensor::from_vec(real, (1, len), device)?, dtype, false, None)?.reshape(len)?; // [len]
            Ok(Fresh { n: runs.iter().map(|r| r.len()).sum(), runs, len, fill, bias })
        })
        .collect::<Result<Vec<_>>>()?;
    // Embeddings of the whole sequences (cheap), so every position keeps its position id.
    let ids: Vec<&[u32]> = rows.iter().map(|row| row.ids).collect();
    let flat = ids.concat();
    let total = flat.len();
    let x = embeddings.forward_rows(&Tensor::from_vec(flat, total, device)?, &ids, drop)?; // [Σ len, h]
    let mut start = 0;
    let mut packed = Vec::new(); // the fresh runs in the packed sequences
    for f in &fresh {
        packed.extend(f.runs.iter().map(|r| start + r.start..start + r.end));
        start += f.len;
    }
    let x = gather(&x, &packed)?; // [Σ n, h]
    let fills: Vec<bool> = fresh.iter().map(|f| f.fill).collect();
    through_layers(rows, &fills, layers, x, |layer, x, past| layer.forward_cached(x, &fresh, past, drop))
}

impl Layer {
    /// `x`: [Σ n, hidden], the states of the fresh positions of the rows `fresh`, packed in
    /// order; `past[j]`: this layer's cached (keys, values) `[len, heads, head_dim]` of row
    /// j, or `None` when the row fills its cache (attention as [`Layer::forward`] runs it).
    /// Returns the new states and, per row, the keys and values of its whole sequence.
    fn forward_cached(
        &self,
        x: &Tensor,
        fresh: &[Fresh],
        past: &[Option<&(Tensor, Tensor)>],
        drop: &Dropout,
    ) -> Result<(Tensor, Vec<(Tensor, Tensor)>)> {
        let h = x.dim(1)?;
        let d = h / self.heads;
        let qkv = match &self.qkv {
            Some(qkv) => qkv.forward(x)?,
            None => crate::dense::Dense::forward_cat(&[&self.query, &self.key, &self.value], x)?,
        }; // [Σ n, 3h]
        let mut contexts = Vec::with_capacity(fresh.len());
        let mut pairs = Vec::with_capacity(fresh.len());
        let mut start = 0;
        for (f, past) in fresh.iter().zip(past) {
            let qkv = qkv.narrow(0, start, f.n)?; // [n, 3h]
            start += f.n;
            let k = qkv.narrow(1, h, h)?.reshape((f.n, self.heads, d))?;
            let v = qkv.narrow(1, 2 * h, h)?.reshape((f.n, self.heads, d))?;
            let (context, keys, values) = match past {
                None => {
                    let keys = Keys::Packed { bias: f.bias.clone(), lengths: Arc::from([f.n]) };
                    (attention(&qkv, &keys, self.heads, drop.mask(self.attention_dropout))?, k, v)
                }
                Some((past_k, past_v)) => {
                    let keys = splice(past_k, &k, &f.runs, f.len)?;
                    let values = splice(past_v, &v, &f.runs, f.len)?;
                    let q = qkv.narrow(1, 0, h)?.reshape((f.n, self.heads, d))?;
                    (cross_attention(&q, &keys, &values, Some(&f.bias))?, keys, values)
                }
            }; // context [n, h]
            contexts.push(context);
            pairs.push((keys.contiguous()?, values.contiguous()?));
        }
        let context = Tensor::cat(&contexts, 0)?; // [Σ n, h]
        let out = self.attention_out.product(&context)?;
        let x = self.attention_norm.forward_add(&out, Some(self.attention_out.bias()), Some(x), drop.mask(self.hidden_dropout))?;
        let inner = self.intermediate.forward_act(self.act, &x)?; // [Σ n, ffn]
        let out = self.output.product(&inner)?;
        let x = self.output_norm.forward_add(&out, Some(self.output.bias()), Some(&x), drop.mask(self.hidden_dropout))?;
        Ok((x, pairs))
    }
}
