//! Keys and values kept between forward passes over one sequence, for
//! [`crate::MaskedLm::encode_cached`] (Fast-dLLM's prefix and dual caches, dKV-Cache's
//! refreshed cache of decoded positions). What a layer stores is the backbone's business:
//! callers only create, pass and drop a [`KvCache`] (with the ids and positions of its
//! sequence in a [`CachedRow`] when several sequences run in one forward).

use candle_core::{D, DType, Tensor};
use std::ops::Range;

/// The keys and values of every attention layer at every position of one sequence, as the
/// forward passes that last computed each position left them.
///
/// Empty when created; [`crate::MaskedLm::encode_cached`] over the whole sequence fills it,
/// calls over some of its positions read it at the others and write the fresh keys and
/// values of those positions into it.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// The number of positions it covers (0: empty).
    pub(crate) len: usize,
    /// Per layer, the backbone's keys and values, `[len, kv_heads, head_dim]` each (the
    /// Llama body's and ModernBERT's keys rotated; the BERT family's and ModernBERT's with
    /// `kv_heads` = heads).
    pub(crate) layers: Vec<(Tensor, Tensor)>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// The number of sequence positions the cache holds keys and values for (0 when empty).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the keys and values.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes()).sum()
    }

    /// Forgets everything (the next cached forward must cover the whole sequence).
    pub fn clear(&mut self) {
        self.len = 0;
        self.layers.clear();
    }

    /// Whether a cached forward that computes `rows` (normalised by [`runs`]) of a sequence
    /// of `len` through a model of `layers` layers is a full forward, which fills the cache;
    /// any other must find the cache filled for that length and layer count.
    pub(crate) fn fills(&self, rows: &[Range<usize>], len: usize, layers: usize) -> crate::Result<bool> {
        let fill = matches!(rows, [one] if *one == (0..len));
        if !fill && (self.len != len || self.layers.len() != layers) {
            return Err(misuse(format!(
                "cached forward over positions {rows:?}: the cache holds {} positions of {} layers, the sequence has {len} \
                 positions and the model {layers} layers (fill the cache with a forward over the whole sequence first)",
                self.len,
                self.layers.len(),
            )));
        }
        Ok(fill)
    }
}

/// One sequence of a packed cached forward ([`crate::MaskedLm::encode_cached_rows`]): what
/// [`crate::MaskedLm::encode_cached`] takes for it, `pad` aside.
#[derive(Debug)]
pub struct CachedRow<'a> {
    /// The whole sequence.
    pub ids: &'a [u32],
    /// The positions computed afresh, as ascending runs.
    pub fresh: &'a [Range<usize>],
    /// The sequence's cache, read outside `fresh` and written at it.
    pub cache: &'a mut KvCache,
}

/// The layers of a packed cached forward over `rows` (the BERT family's and the Llama
/// body's): `layer(l, x, past)` runs layer `l` on the stacked states `x` [Σ n, h] with
/// `past[r]` row r's cached keys and values of that layer (`None` where `fills[r]`: the
/// row is computed whole and fills its cache), returning the new states and each row's
/// keys and values of its whole sequence. Every row's cache is replaced only after the last
/// layer, so an error leaves every cache as it was. Returns the final states.
pub(crate) fn through_layers<L>(
    rows: &mut [CachedRow<'_>],
    fills: &[bool],
    layers: &[L],
    mut x: Tensor,
    mut layer: impl FnMut(&L, &Tensor, &[Option<&(Tensor, Tensor)>]) -> crate::Result<(Tensor, Vec<(Tensor, Tensor)>)>,
) -> crate::Result<Tensor> {
    let mut kv: Vec<Vec<(Tensor, Tensor)>> = rows.iter().map(|_| Vec::with_capacity(layers.len())).collect();
    for (l, weights) in layers.iter().enumerate() {
        let past: Vec<Option<&(Tensor, Tensor)>> = rows.iter().zip(fills).map(|(row, &fill)| (!fill).then(|| &row.cache.layers[l])).collect();
        let (y, pairs) = layer(weights, &x, &past)?;
        x = y;
        for (row_kv, pair) in kv.iter_mut().zip(pairs) {
            row_kv.push(pair);
        }
    }
    for (row, layers) in rows.iter_mut().zip(kv) {
        row.cache.len = row.ids.len();
        row.cache.layers = layers;
    }
    Ok(x)
}

/// A cached forward called with positions or a cache that do not fit its sequence.
fn misuse(message: String) -> crate::ModelError {
    crate::ModelError::Candle(candle_core::Error::Msg(message))
}

/// The positions of a cached forward (`fresh` of [`crate::MaskedLm::encode_cached`]) checked
/// against a sequence of `len` and normalised: ascending, non-overlapping, non-empty runs
/// inside `0..len` (at least one), touching runs joined (so a set given as several runs
/// and the same set given as one range are the same computation).
pub(crate) fn runs(fresh: &[Range<usize>], len: usize) -> crate::Result<Vec<Range<usize>>> {
    let bad = || misuse(format!("cached forward: positions {fresh:?} are not a non-empty part of a sequence of {len}"));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(fresh.len());
    for r in fresh {
        if r.is_empty() || r.end > len || out.last().is_some_and(|last| r.start < last.end) {
            return Err(bad());
        }
        match out.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => out.push(r.clone()),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// The rows `runs` of `x` [len, ...] in order → [positions in runs, ...] (a view for one run).
pub(crate) fn gather(x: &Tensor, runs: &[Range<usize>]) -> candle_core::Result<Tensor> {
    match runs {
        [one] => x.narrow(0, one.start, one.len()),
        _ => Tensor::cat(&runs.iter().map(|r| x.narrow(0, r.start, r.len())).collect::<candle_core::Result<Vec<_>>>()?, 0),
    }
}

/// `past` [len, ...] with its rows `runs` (ascending, non-overlapping) replaced by `fresh`
/// [positions in runs, ...], in order.
pub(crate) fn splice(past: &Tensor, fresh: &Tensor, runs: &[Range<usize>], len: usize) -> candle_core::Result<Tensor> {
    if past.dim(0)? != len {
        candle_core::bail!("cached keys cover {} positions, the sequence has {len}", past.dim(0)?);
    }
    if let [one] = runs
        && one.len() == len
    {
        return Ok(fresh.clone());
    }
    let mut parts = Vec::with_capacity(2 * runs.len() + 1);
    let (mut at, mut offset) = (0, 0);
    for r in runs {
        if r.start > at {
            parts.push(past.narrow(0, at, r.start - at)?);
        }
        parts.push(if runs.len() == 1 { fresh.clone() } else { fresh.narrow(0, offset, r.len())? });
        offset += r.len();
        at = r.end;
    }
    if at < len {
        parts.push(past.narrow(0, at, len - at)?);
    }
    Tensor::cat(&parts, 0)
}

/// `softmax(q·kᵀ/√d + key_bias)·v` per head, in f32 whatever the compute dtype: `q` [n,
/// heads, d] (queries of some positions) against `k`, `v` [len, kv_heads, d] (keys and
/// values of the whole sequence), each key/value head serving `heads / kv_heads`
/// consecutive query heads (as Llama's `repeat_kv`); `key_bias` [len] additive (padding)
/// → [n, heads·d] in `q`'s dtype. On the CPU with the fused kernels on, two f32 GEMMs
/// per head (`kernels::cross_attention`); otherwise [`composed_cross_attention`].
pub(crate) fn cross_attention(q: &Tensor, k: &Tensor, v: &Tensor, key_bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    if q.device().is_cpu() && crate::kernels::fused_enabled() {
        return crate::kernels::cross_attention(q, k, v, key_bias);
    }
    composed_cross_attention(q, k, v, key_bias)
}

/// [`cross_attention`] composed from candle ops (any device; the fused attention kernel
/// wants queries and keys of the same rows).
fn composed_cross_attention(q: &Tensor, k: &Tensor, v: &Tensor, key_bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let (n, heads, d) = q.dims3()?;
    let kv = k.dim(1)?;
    let g = heads / kv;
    let f32 = |t: &Tensor| t.to_dtype(DType::F32);
    // Query head kv·g + j sits at [kv, j·n + row] of the grouped layout.
    let qg = f32(q)?.reshape((n, kv, g, d))?.permute((1, 2, 0, 3))?.reshape((kv, g * n, d))?; // [kv, g·n, d]
    let kt = f32(k)?.permute((1, 2, 0))?.contiguous()?; // [kv, d, len]
    let scores = (qg.matmul(&kt)? * (1.0 / (d as f64).sqrt()))?; // [kv, g·n, len]
    let scores = match key_bias {
        Some(bias) => scores.broadcast_add(&f32(bias)?)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
    let vt = f32(v)?.transpose(0, 1)?.contiguous()?; // [kv, len, d]
    let context = probs.matmul(&vt)?; // [kv, g·n, d]
    context.reshape((kv, g, n, d))?.permute((2, 0, 1, 3))?.reshape((n, heads * d))?.to_dtype(q.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// `[shape]` values in [-2, 2) from a fixed pattern.
    fn pattern(shape: &[usize], seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 250.0 - 2.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The fused kernel equals the composed form: grouped heads (4 query heads on 2
    /// key/value heads) and plain ones, with and without a padding bias, f32 and bf16.
    #[test]
    fn fused_cross_attention_equals_composed() {
        let (n, len, d) = (5, 23, 16);
        let mut bias = vec![0f32; len];
        bias[3] = f32::NEG_INFINITY;
        bias[17] = -1e4;
        let bias = Tensor::from_vec(bias, len, &Device::Cpu).unwrap();
        for (heads, kv) in [(4, 2), (3, 3)] {
            let (q, k, v) = (pattern(&[n, heads, d], 1), pattern(&[len, kv, d], 2), pattern(&[len, kv, d], 3));
            for dtype in [DType::F32, DType::BF16] {
                let (q, k, v) = (q.to_dtype(dtype).unwrap(), k.to_dtype(dtype).unwrap(), v.to_dtype(dtype).unwrap());
                for b in [None, Some(&bias)] {
                    let fused = crate::kernels::cross_attention(&q, &k, &v, b).unwrap();
                    let composed = composed_cross_attention(&q, &k, &v, b).unwrap();
                    assert_eq!(fused.dims(), [n, heads * d]);
                    assert_eq!(fused.dtype(), dtype);
                    let diff = (fused.to_dtype(DType::F32).unwrap() - composed.to_dtype(DType::F32).unwrap()).unwrap();
                    let max = diff.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                    let tolerance = if dtype == DType::F32 { 1e-5 } else { 2e-2 };
                    assert!(max <= tolerance, "heads {heads}/{kv} {dtype:?} bias {}: {max}", b.is_some());
                }
            }
        }
        let bad = crate::kernels::cross_attention(&pattern(&[n, 3, d], 1), &pattern(&[len, 2, d], 2), &pattern(&[len, 2, d], 3), None);
        assert!(bad.unwrap_err().to_string().contains("do not fit"));
    }
}
