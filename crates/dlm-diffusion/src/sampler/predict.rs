//! One denoiser call (SPEC §4.1): run the model on the canvases (packed end to end,
//! [`MaskedLm::encode_rows`]: no product runs on padding, and rows with no position to
//! predict are left out), project only at the requested generation positions, take
//! `log_softmax`, and read off `(token, log p, confidence)` per position.
//! What is read off is given per row ([`Draws`]): how tokens are chosen ([`Decoding`]:
//! argmax or sampling), what the strategy needs ([`Readout`]: the RDM-family strategies
//! forbid `<mask>`, its logit −∞; the LLaDA, Fast-dLLM and Dream references take the whole
//! vocabulary; Dream ranks by a confidence computed from the whole distribution), and the
//! generator samples are drawn from: one shared generator for [`super::denoise`], one per
//! row for [`super::StepBatch`].
//! Argmax positions ask the model for just that ([`MaskedLm::project_argmax`]: the fused
//! projection of the backbone writes no `[positions, vocab]` logits; "no id forbidden" is
//! an excluded id past the vocabulary, [`NO_EXCLUDED`]); positions that need the whole
//! distribution are projected [`PROJECT_CHUNK`] at a time. The only data that cross to the
//! host per step are the chosen tokens, their log-probabilities and confidences.

use super::config::{Decoding, DreamAlg, Strategy};
use super::dream;
use crate::error::{DiffusionError, Result};
use candle_core::Tensor;
use dlm_models::MaskedLm;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The token chosen at one position, its log-probability under the model and the
/// confidence the strategy ranks positions by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Prediction {
    pub token: u32,
    pub logp: f32,
    /// [`Readout::MaskForbidden`] and [`Readout::FullVocabulary`]: `logp` itself (ranking
    /// by it is ranking by the probability). [`Readout::Dream`]: `sample_tokens`'
    /// confidence for the row's `alg` (a probability, a margin or a negative entropy).
    pub confidence: f32,
}

impl Prediction {
    /// A prediction whose confidence is its log-probability.
    pub fn new(token: u32, logp: f32) -> Prediction {
        Prediction { token, logp, confidence: logp }
    }
}

/// What a strategy reads off the model's distribution at a position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Readout {
    /// `<mask>` forbidden (its logit −∞), as the RDM-family code does; confidence = log p.
    MaskForbidden,
    /// The whole vocabulary, `<mask>` included, as LLaDA's and Fast-dLLM's `generate` do
    /// (`argmax` over every id); confidence = log p.
    FullVocabulary,
    /// Dream's `sample_tokens` over the whole vocabulary: top-p, then top-k filtering, the
    /// decoding's temperature, and the confidence of `alg`.
    Dream { alg: DreamAlg, top_p: Option<f64>, top_k: Option<usize> },
}

impl Readout {
    pub fn of(strategy: &Strategy) -> Readout {
        match *strategy {
            Strategy::Reparam { .. } | Strategy::Cmlm | Strategy::Ar => Readout::MaskForbidden,
            Strategy::LowConfidence { .. } | Strategy::ConfidenceThreshold { .. } => Readout::FullVocabulary,
            Strategy::Dream { alg, top_p, top_k, .. } => Readout::Dream { alg, top_p, top_k },
        }
    }

    /// Whether the argmax and its log-probability are all this readout needs under
    /// `decoding`. Dream at temperature 0: the token is the argmax whatever the filtering
    /// (top-p and top-k keep the most likely token); `origin` needs no confidence and
    /// `maskgit_plus` without filtering ranks by the argmax's probability `exp(log p)`.
    fn argmax_suffices(self, decoding: Decoding) -> bool {
        match (self, decoding) {
            (_, Decoding::Sample { .. }) => false,
            (Readout::MaskForbidden | Readout::FullVocabulary, Decoding::Argmax) => true,
            (Readout::Dream { alg, top_p, top_k }, Decoding::Argmax) => {
                alg == DreamAlg::Origin || (alg == DreamAlg::MaskgitPlus && top_p.is_none_or(|p| p >= 1.0) && top_k.is_none())
            }
        }
    }
}

/// The excluded id that forbids nothing: past every vocabulary (the fused projection and
/// the composed `log_softmax` both leave every column as it is).
pub(crate) const NO_EXCLUDED: u32 = u32::MAX;

/// Per row of a [`Predictor::predict`] call: how its tokens are read off and the
/// generator its samples are drawn from.
pub(crate) trait Draws {
    fn decoding(&self, row: usize) -> Decoding;
    fn readout(&self, row: usize) -> Readout;
    fn rng(&mut self, row: usize) -> &mut ChaCha8Rng;
    /// How many most likely tokens to report per position of `row` (0: none, the default;
    /// the predictions themselves never depend on it).
    fn top_logprobs(&self, _row: usize) -> usize {
        0
    }
    /// Receives the `top_logprobs(row)` most likely tokens of position `index` of `row`
    /// (in the order of `positions[row]`), from the distribution its token was read off.
    fn record_top(&mut self, _row: usize, _index: usize, _top: Vec<(u32, f32)>) {}
}

/// Every row decodes alike and draws from one generator, in row order.
pub(crate) struct Shared<'r> {
    pub decoding: Decoding,
    pub readout: Readout,
    pub rng: &'r mut ChaCha8Rng,
}

impl Draws for Shared<'_> {
    fn decoding(&self, _row: usize) -> Decoding {
        self.decoding
    }
    fn readout(&self, _row: usize) -> Readout {
        self.readout
    }
    fn rng(&mut self, _row: usize) -> &mut ChaCha8Rng {
        self.rng
    }
}

/// Something that predicts tokens for positions of canvases: the model, or in tests a
/// table of predictions recorded elsewhere.
pub(crate) trait Predictor {
    /// `positions[i]`: absolute positions of `rows[i]` to predict, answered in that order.
    fn predict(&mut self, rows: &[&[u32]], positions: &[Vec<usize>], draws: &mut dyn Draws) -> Result<Vec<Vec<Prediction>>>;

    /// Told by [`super::run`] before each `predict`: which rows of the run the call's rows
    /// are (their index among the run's canvases) and the semi-autoregressive block each is
    /// in (0 for the strategies without blocks). Predictors that keep state per row (the
    /// refreshed KV cache, `super::refresh`) need it; the others ignore it.
    fn rows_of_step(&mut self, _rows: &[(usize, usize)]) {}
}

/// Positions projected through the vocabulary at once (bounds the `[n, V]` buffer).
const PROJECT_CHUNK: usize = 256;

pub(crate) struct ModelPredictor<'a> {
    model: &'a dyn MaskedLm,
    pad: u32,
    mask: u32,
}

impl<'a> ModelPredictor<'a> {
    pub fn new(model: &'a dyn MaskedLm, pad: u32, mask: u32) -> Result<Self> {
        let v = model.vocab_size();
        if mask as usize >= v {
            return Err(DiffusionError::InvalidConfig(format!("<mask> id {mask} is outside the model's vocabulary of {v}")));
        }
        Ok(ModelPredictor { model, pad, mask })
    }
}

impl Predictor for ModelPredictor<'_> {
    fn predict(&mut self, rows: &[&[u32]], positions: &[Vec<usize>], draws: &mut dyn Draws) -> Result<Vec<Vec<Prediction>>> {
        let b = rows.len();
        let total: usize = positions.iter().map(Vec::len).sum();
        if total == 0 {
            return Ok(vec![Vec::new(); b]);
        }
        let device = self.model.device();
        // Only rows with positions to predict are encoded.
        let used: Vec<usize> = (0..b).filter(|&i| !positions[i].is_empty()).collect();
        let encoded: Vec<&[u32]> = used.iter().map(|&i| rows[i]).collect();
        let hidden = self.model.encode_rows(&encoded, self.pad)?; // [Σ len, h], no padding rows
        let mut flat = Vec::with_capacity(total);
        let mut offset = 0;
        for &i in &used {
            flat.extend(positions[i].iter().map(|&p| (offset + p) as u32));
            offset += rows[i].len();
        }
        let selected = hidden.index_select(&Tensor::from_vec(flat, total, device)?, 0)?; // [n, h]
        read_off(self.model, self.mask, &selected, positions, draws)
    }
}

/// The predictions at `selected` [n, h] (the final hidden states of the positions of every
/// row, `positions[i].len()` of row i, rows in order), read off as each row's draws say.
pub(crate) fn read_off(
    model: &dyn MaskedLm,
    mask: u32,
    selected: &Tensor,
    positions: &[Vec<usize>],
    draws: &mut dyn Draws,
) -> Result<Vec<Vec<Prediction>>> {
    let total: usize = positions.iter().map(Vec::len).sum();
    let device = model.device();
    // The row each selected position belongs to, and how it is read off.
    let owner: Vec<usize> = positions.iter().enumerate().flat_map(|(i, ps)| std::iter::repeat_n(i, ps.len())).collect();
    let readout: Vec<Readout> = owner.iter().map(|&r| draws.readout(r)).collect();
    let full: Vec<bool> = owner.iter().zip(&readout).map(|(&r, rd)| !rd.argmax_suffices(draws.decoding(r))).collect();
    let excluded = |k: usize| if readout[k] == Readout::MaskForbidden { mask } else { NO_EXCLUDED };
    let mut out: Vec<Option<Prediction>> = vec![None; total];
    // One group per forbidden id (`<mask>` first): with a single strategy in the batch,
    // exactly one group, so the projections are those of a batch of that strategy alone.
    for forbid in [mask, NO_EXCLUDED] {
        let argmax_at: Vec<u32> = (0..total as u32).filter(|&k| !full[k as usize] && excluded(k as usize) == forbid).collect();
        if !argmax_at.is_empty() {
            let rows = if argmax_at.len() == total {
                selected.clone()
            } else {
                selected.index_select(&Tensor::from_slice(&argmax_at, argmax_at.len(), device)?, 0)?
            };
            for (&k, a) in argmax_at.iter().zip(model.project_argmax(&rows, forbid)?) {
                let confidence = match readout[k as usize] {
                    Readout::Dream { .. } => a.logp.exp(),
                    _ => a.logp,
                };
                out[k as usize] = Some(Prediction { token: a.token, logp: a.logp, confidence });
            }
        }
        let full_at: Vec<u32> = (0..total as u32).filter(|&k| full[k as usize] && excluded(k as usize) == forbid).collect();
        for chunk in full_at.chunks(PROJECT_CHUNK) {
            let rows = selected.index_select(&Tensor::from_slice(chunk, chunk.len(), device)?, 0)?;
            let table = model.project_log_probs(&rows, forbid)?.to_vec2::<f32>()?; // [len, V]
            for (&k, row) in chunk.iter().zip(&table) {
                let r = owner[k as usize];
                let temperature = match draws.decoding(r) {
                    Decoding::Sample { temperature } => Some(temperature),
                    Decoding::Argmax => None,
                };
                let p = match (readout[k as usize], temperature) {
                    (Readout::Dream { alg, top_p, top_k }, _) => {
                        let (token, confidence) = dream::sample_tokens(row, temperature, top_p, top_k, alg, draws.rng(r));
                        Prediction { token: token as u32, logp: row[token], confidence }
                    }
                    (_, Some(temperature)) => {
                        let token = sample_index(row, temperature, draws.rng(r));
                        Prediction::new(token as u32, row[token])
                    }
                    (_, None) => continue, // argmax positions never take this path
                };
                out[k as usize] = Some(p);
            }
        }
    }
    let out = out
        .into_iter()
        .map(|p| p.ok_or_else(|| DiffusionError::InvalidBatch("no prediction was computed for a position".into())))
        .collect::<Result<Vec<_>>>()?;
    record_top_logprobs(model, selected, &owner, positions, |k| excluded(k), draws)?;
    let mut it = out.into_iter();
    Ok(positions.iter().map(|ps| it.by_ref().take(ps.len()).collect()).collect())
}

/// For the rows whose draws ask for them (`Draws::top_logprobs` > 0): the most likely
/// tokens at each of their positions, from a separate `project_log_probs` of those rows with
/// the same forbidden id as their prediction. Nothing runs when no row asks, so the
/// predictions and their cost are exactly those of a call that does not ask.
fn record_top_logprobs(
    model: &dyn MaskedLm,
    selected: &Tensor,
    owner: &[usize],
    positions: &[Vec<usize>],
    excluded: impl Fn(usize) -> u32,
    draws: &mut dyn Draws,
) -> Result<()> {
    let asked: Vec<u32> = (0..owner.len() as u32).filter(|&k| draws.top_logprobs(owner[k as usize]) > 0).collect();
    if asked.is_empty() {
        return Ok(());
    }
    // Index of each flat position within its row.
    let starts: Vec<usize> = positions.iter().scan(0, |acc, ps| { let s = *acc; *acc += ps.len(); Some(s) }).collect();
    let device = model.device();
    for forbid in asked.iter().map(|&k| excluded(k as usize)).collect::<std::collections::BTreeSet<_>>() {
        let at: Vec<u32> = asked.iter().copied().filter(|&k| excluded(k as usize) == forbid).collect();
        for chunk in at.chunks(PROJECT_CHUNK) {
            let rows = selected.index_select(&Tensor::from_slice(chunk, chunk.len(), device)?, 0)?;
            let table = model.project_log_probs(&rows, forbid)?.to_vec2::<f32>()?; // [len, V]
            for (&k, row) in chunk.iter().zip(&table) {
                let r = owner[k as usize];
                let top = top_n(row, draws.top_logprobs(r));
                draws.record_top(r, k as usize - starts[r], top);
            }
        }
    }
    Ok(())
}

/// The `n` largest entries of `logp` as `(id, value)`, largest first, ties by lower id.
pub(crate) fn top_n(logp: &[f32], n: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    if n == 0 {
        return best;
    }
    for (i, &v) in logp.iter().enumerate() {
        if v.is_nan() || (best.len() == n && v <= best[n - 1].1) {
            continue;
        }
        let at = best.iter().position(|&(_, b)| v > b).unwrap_or(best.len());
        best.insert(at, (i as u32, v));
        best.truncate(n);
    }
    best
}

/// Inverse-CDF draw from `softmax(logp / temperature)` (f64 accumulation).
pub(crate) fn sample_index(logp: &[f32], temperature: f64, rng: &mut impl Rng) -> usize {
    let inv = 1.0 / temperature;
    let top = logp.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64 * inv));
    let weights: Vec<f64> = logp.iter().map(|&x| (x as f64 * inv - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    let target = rng.random::<f64>() * total;
    let mut acc = 0.0;
    let mut last_positive = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            acc += w;
            last_positive = i;
            if acc > target {
                return i;
            }
        }
    }
    last_positive
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn top_n_is_sorted_with_ties_to_the_lower_id() {
        // values 0:-1 1:-0.5 2:-3 3:-0.5 4:NaN → top 3: 1 (-0.5), 3 (-0.5, tie: after 1), 0 (-1).
        let logp = [-1.0, -0.5, -3.0, -0.5, f32::NAN];
        assert_eq!(top_n(&logp, 3), vec![(1, -0.5), (3, -0.5), (0, -1.0)]);
        assert_eq!(top_n(&logp, 0), vec![]);
        assert_eq!(top_n(&logp[..2], 5), vec![(1, -0.5), (0, -1.0)]);
    }

    #[test]
    fn sampling_follows_the_tempered_distribution() {
        // p = [0.1, 0.2, 0.7] (and a forbidden −∞ entry). At τ = 1 the empirical
        // frequencies over 20000 draws are within 0.015 of p; at τ → small, argmax wins.
        let logp: Vec<f32> = [0.1f32, 0.2, 0.7].iter().map(|p| p.ln()).chain([f32::NEG_INFINITY]).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut counts = [0usize; 4];
        for _ in 0..20000 {
            counts[sample_index(&logp, 1.0, &mut rng)] += 1;
        }
        assert_eq!(counts[3], 0);
        for (c, p) in counts.iter().zip([0.1, 0.2, 0.7]) {
            assert!((*c as f64 / 20000.0 - p).abs() < 0.015, "{counts:?}");
        }
        assert!((0..100).all(|_| sample_index(&logp, 0.01, &mut rng) == 2));
    }
}
