//! The narrow interface between backbones and everything above them (diffusion objective,
//! samplers, length predictor, evaluation). Written against this trait, never against a
//! concrete model, so that new backbones plug in without touching the layers above.
//!
//! Greedy decoding needs only the best token and its log-probability per position, so
//! [`MaskedLm::project_argmax`] answers exactly that. Its default is the composed path
//! ([`composed_project_argmax`]: logits → f32 → `log_softmax` with one id forbidden →
//! argmax and max); a backbone may override it with a fused kernel that never writes the
//! `[rows, vocab]` logits, and must then return the same tokens (ties included) and the
//! same log-probabilities up to the order of the f32 additions in the log-sum-exp.

use crate::error::{ModelError, Result};
use crate::kv_cache::{CachedRow, KvCache};
use candle_core::{D, DType, Device, Tensor};
use std::ops::Range;

/// Rows projected at once (bounds the composed path's `[rows, vocab]` buffers). A fused
/// override must chunk rows the same way to reproduce the logits bitwise: the GEMM takes
/// another path for a single row.
pub(crate) const PROJECT_ROWS: usize = 256;

/// The most likely token at one position and its log-probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Argmax {
    pub token: u32,
    pub logp: f32,
}

/// A bidirectional masked language model used as a diffusion denoiser (SPEC §1): full
/// attention over the whole sequence, no timestep input, logits from its own MLM head.
pub trait MaskedLm {
    /// Final hidden states. `ids`: `[batch, seq]` u32; `attention_mask`: `[batch, seq]`
    /// u32/u8 with 1 for real tokens and 0 for padding. Returns `[batch, seq, hidden]`.
    fn encode(&self, ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor>;

    /// Final hidden states of sequences of their own lengths, packed end to end:
    /// `rows[i]` u32 ids → `[Σ len, hidden]`, row i's states at rows `Σ_{j<i} len_j` on.
    /// Ids equal to `pad` inside a row are masked as keys, as [`MaskedLm::encode`] masks
    /// them. Equals `encode` of the rows padded on the right with `pad`, at the real
    /// positions (the default computes exactly that); a backbone may override it to run
    /// no product on padding rows. LLaDA and Dream attend to every id of a row, as their
    /// generation code does (LLaDA's padding id is its end-of-text id).
    fn encode_rows(&self, rows: &[&[u32]], pad: u32) -> Result<Tensor> {
        padded_encode_rows(self, rows, pad)
    }

    /// Final hidden states of one sequence `ids` at the positions `fresh` — ascending,
    /// non-overlapping, non-empty ranges (a set of positions as runs; touching runs are the
    /// same as one) → `[Σ run lengths, hidden]`, in order — computed with the keys and
    /// values of every other position read from `cache` instead of recomputed (Fast-dLLM's
    /// prefix and dual caches: one range; dKV-Cache's cache of decoded positions: any set);
    /// the keys and values computed at `fresh` are written into `cache`. `pad` is masked as
    /// a key exactly where [`MaskedLm::encode_rows`] masks it. With `fresh` the whole
    /// sequence this is a full forward that (re)fills the cache and equals
    /// `encode_rows(&[ids], pad)`; otherwise the cache must have been filled for a sequence
    /// of the same length, and the states equal `encode_rows` at `fresh` (up to rounding)
    /// when no id outside `fresh` changed since — after such changes they are the caches'
    /// approximation. Every position keeps what the whole sequence gives it (absolute
    /// position ids; rotary keys cached rotated by their position), every query sees the
    /// keys the uncached forward lets it see (padding masked, ModernBERT's local layers only
    /// within their window of it), and a backbone whose output at a position is read from
    /// another one (Dream's shift) computes whatever `fresh` needs. [`crate::Backbone`]
    /// implements it for LLaDA, Dream, the BERT family and ModernBERT (not in causal mode).
    /// The default refuses: a backbone without a cached path is an error, never silently
    /// recomputed.
    fn encode_cached(&self, ids: &[u32], pad: u32, fresh: &[Range<usize>], cache: &mut KvCache) -> Result<Tensor> {
        let _ = (ids, pad, fresh, cache);
        Err(ModelError::Unsupported("this model has no cached forward (KV caches)".into()))
    }

    /// [`MaskedLm::encode_cached`] of several sequences in one call: `rows[i]` gives row
    /// i's ids, fresh positions and cache → `[Σ_i Σ fresh run lengths of row i, hidden]`,
    /// row i's states after those of the rows before it — the concatenation of what
    /// `encode_cached` returns per row, each cache left as `encode_cached` leaves it (each
    /// row attends only to its own keys and values; a row may fill its cache while others
    /// read theirs). The default ([`serial_encode_cached_rows`]) runs the rows one by one;
    /// a backbone may override it to run the dense products once over every row's fresh
    /// positions (the BERT family, LLaDA and Dream do, through [`crate::Backbone`]), with states equal to
    /// the per-row ones up to rounding. A row that cannot run is an error, and then no
    /// cache has changed in a backbone that packs (the default may have run earlier rows).
    fn encode_cached_rows(&self, rows: &mut [CachedRow<'_>], pad: u32) -> Result<Tensor> {
        serial_encode_cached_rows(self, rows, pad)
    }

    /// Bytes of the [`KvCache`] that [`MaskedLm::encode_cached`] keeps for a sequence of
    /// `len` positions (what a server budgets per cached row); `None` for a backbone
    /// without a cached forward.
    fn kv_cache_bytes(&self, len: usize) -> Option<usize> {
        let _ = len;
        None
    }

    /// The MLM head applied to hidden states `[..., hidden]`, giving `[..., vocab]`.
    /// Callers select rows first so the vocabulary projection runs only where needed
    /// (masked positions in training, generation positions in sampling).
    fn project(&self, hidden: &Tensor) -> Result<Tensor>;

    /// Logits at every position: `[batch, seq, vocab]`.
    fn logits(&self, ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        self.project(&self.encode(ids, attention_mask)?)
    }

    /// `log_softmax` over the vocabulary of the projection of `hidden` `[rows, hidden]`,
    /// in f32, with the id `excluded` forbidden (its logit −∞, e.g. `<mask>` when
    /// sampling): `[rows, vocab]`.
    fn project_log_probs(&self, hidden: &Tensor, excluded: u32) -> Result<Tensor> {
        log_probs_excluding(&self.project(hidden)?, excluded)
    }

    /// Per row of `hidden` `[rows, hidden]`: the argmax of
    /// [`MaskedLm::project_log_probs`] (the first of equal values, as candle's `argmax`)
    /// and its log-probability. The default is [`composed_project_argmax`].
    fn project_argmax(&self, hidden: &Tensor, excluded: u32) -> Result<Vec<Argmax>> {
        composed_project_argmax(self, hidden, excluded)
    }

    /// Whether a generation canvas ends with `</s>` after the generated positions (the
    /// BERT family's layout, SPEC §2: `<s> prompt <mask>×L </s>`), or at the last generated
    /// position (LLaDA and Dream, whose generation code appends nothing).
    fn closes_canvas_with_eos(&self) -> bool {
        true
    }

    /// Width of the output vocabulary (the number of logits per position).
    fn vocab_size(&self) -> usize;
    /// Width of the hidden states returned by [`MaskedLm::encode`].
    fn hidden_size(&self) -> usize;
    /// The longest sequence the position embeddings allow (512 for RoBERTa/XLM-R, whose
    /// 514 positions start at `padding_idx + 1`).
    fn max_sequence_length(&self) -> usize;
    fn device(&self) -> &Device;
    /// The dtype activations are computed in (f32 or bf16).
    fn dtype(&self) -> DType;
}

/// [`MaskedLm::encode_rows`] through [`MaskedLm::encode`]: the rows padded on the right
/// with `pad` into one `[b, max len]` batch, then the real positions selected.
pub fn padded_encode_rows<M: MaskedLm + ?Sized>(model: &M, rows: &[&[u32]], pad: u32) -> Result<Tensor> {
    let (b, seq) = (rows.len(), rows.iter().map(|r| r.len()).max().unwrap_or(0));
    let mut ids = Vec::with_capacity(b * seq);
    let mut real = Vec::new(); // flat indices of the real positions
    for (i, row) in rows.iter().enumerate() {
        ids.extend_from_slice(row);
        ids.extend(std::iter::repeat_n(pad, seq - row.len()));
        real.extend((0..row.len() as u32).map(|j| (i * seq) as u32 + j));
    }
    let device = model.device();
    let attention: Vec<u32> = ids.iter().map(|&id| u32::from(id != pad)).collect();
    let ids = Tensor::from_vec(ids, (b, seq), device)?;
    let attention = Tensor::from_vec(attention, (b, seq), device)?;
    let hidden = model.encode(&ids, &attention)?; // [b, seq, h]
    let h = hidden.dim(D::Minus1)?;
    let index = Tensor::from_vec(real, rows.iter().map(|r| r.len()).sum::<usize>(), device)?;
    Ok(hidden.reshape((b * seq, h))?.index_select(&index, 0)?) // [Σ len, h]
}

/// [`MaskedLm::encode_cached_rows`] through [`MaskedLm::encode_cached`], one row at a time,
/// the states concatenated (`[0, hidden]` for no rows).
pub fn serial_encode_cached_rows<M: MaskedLm + ?Sized>(model: &M, rows: &mut [CachedRow<'_>], pad: u32) -> Result<Tensor> {
    if rows.is_empty() {
        return Ok(Tensor::zeros((0, model.hidden_size()), model.dtype(), model.device())?);
    }
    let parts = rows.iter_mut().map(|r| model.encode_cached(r.ids, pad, r.fresh, r.cache)).collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?) // [Σ fresh, h]
}

/// [`MaskedLm::project_argmax`] composed from [`MaskedLm::project_log_probs`],
/// [`PROJECT_ROWS`] rows at a time: the reference every fused override is tested against.
pub fn composed_project_argmax<M: MaskedLm + ?Sized>(model: &M, hidden: &Tensor, excluded: u32) -> Result<Vec<Argmax>> {
    let rows = hidden.dim(0)?;
    let mut out = Vec::with_capacity(rows);
    for start in (0..rows).step_by(PROJECT_ROWS) {
        let chunk = hidden.narrow(0, start, PROJECT_ROWS.min(rows - start))?;
        let logp = model.project_log_probs(&chunk, excluded)?; // [len, V]
        let tokens = logp.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let scores = logp.max(D::Minus1)?.to_vec1::<f32>()?;
        out.extend(tokens.into_iter().zip(scores).map(|(token, logp)| Argmax { token, logp }));
    }
    Ok(out)
}

/// `log_softmax(logits + bias)` in f32, the bias 0 everywhere and −∞ at `excluded`:
/// `logits` `[rows, vocab]` → `[rows, vocab]`.
pub(crate) fn log_probs_excluding(logits: &Tensor, excluded: u32) -> Result<Tensor> {
    let v = logits.dim(D::Minus1)?;
    let bias: Vec<f32> = (0..v).map(|i| if i == excluded as usize { f32::NEG_INFINITY } else { 0.0 }).collect();
    let bias = Tensor::from_vec(bias, v, logits.device())?; // [V]
    Ok(candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?.broadcast_add(&bias)?, D::Minus1)?)
}
