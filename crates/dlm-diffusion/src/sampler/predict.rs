//! One denoiser call (SPEC §4.1): run the model on the canvases (packed end to end,
//! [`MaskedLm::encode_rows`]: no product runs on padding), project only at the
//! requested generation positions, forbid `<mask>` (its logit set to −∞), take
//! `log_softmax`, and read off `(token, log p)` per position by argmax or by sampling.
//! How each row decodes and which generator it draws from are given per row ([`Draws`]):
//! one shared generator for [`super::denoise`], one per row for [`super::StepBatch`].
//! Argmax positions ask the model for just that ([`MaskedLm::project_argmax`]: the fused
//! projection of the backbone writes no `[positions, vocab]` logits); sampled positions
//! need the whole distribution and are projected [`PROJECT_CHUNK`] at a time. The only
//! data that cross to the host per step are the chosen tokens and their log-probabilities.

use super::config::Decoding;
use crate::error::{DiffusionError, Result};
use candle_core::Tensor;
use dlm_models::MaskedLm;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The token chosen at one position and its log-probability under the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Prediction {
    pub token: u32,
    pub logp: f32,
}

/// Per row of a [`Predictor::predict`] call: how its tokens are read off and the
/// generator its samples are drawn from.
pub(crate) trait Draws {
    fn decoding(&self, row: usize) -> Decoding;
    fn rng(&mut self, row: usize) -> &mut ChaCha8Rng;
}

/// Every row decodes alike and draws from one generator, in row order.
pub(crate) struct Shared<'r> {
    pub decoding: Decoding,
    pub rng: &'r mut ChaCha8Rng,
}

impl Draws for Shared<'_> {
    fn decoding(&self, _row: usize) -> Decoding {
        self.decoding
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
        let hidden = self.model.encode_rows(rows, self.pad)?; // [Σ len, h], no padding rows
        let mut flat = Vec::with_capacity(total);
        let mut offset = 0;
        for (row, ps) in rows.iter().zip(positions) {
            flat.extend(ps.iter().map(|&p| (offset + p) as u32));
            offset += row.len();
        }
        let selected = hidden.index_select(&Tensor::from_vec(flat, total, device)?, 0)?; // [n, h]
        // The row each selected position belongs to, and which positions sample.
        let owner: Vec<usize> = positions.iter().enumerate().flat_map(|(i, ps)| std::iter::repeat_n(i, ps.len())).collect();
        let sampled: Vec<bool> = owner.iter().map(|&r| matches!(draws.decoding(r), Decoding::Sample { .. })).collect();
        let mut out: Vec<Option<Prediction>> = vec![None; total];
        let argmax_at: Vec<u32> = (0..total as u32).filter(|&k| !sampled[k as usize]).collect();
        if !argmax_at.is_empty() {
            let rows = if argmax_at.len() == total {
                selected.clone()
            } else {
                selected.index_select(&Tensor::from_slice(&argmax_at, argmax_at.len(), device)?, 0)?
            };
            for (&k, a) in argmax_at.iter().zip(self.model.project_argmax(&rows, self.mask)?) {
                out[k as usize] = Some(Prediction { token: a.token, logp: a.logp });
            }
        }
        let sample_at: Vec<u32> = (0..total as u32).filter(|&k| sampled[k as usize]).collect();
        for chunk in sample_at.chunks(PROJECT_CHUNK) {
            let rows = selected.index_select(&Tensor::from_slice(chunk, chunk.len(), device)?, 0)?;
            let table = self.model.project_log_probs(&rows, self.mask)?.to_vec2::<f32>()?; // [len, V]
            for (&k, row) in chunk.iter().zip(&table) {
                let Decoding::Sample { temperature } = draws.decoding(owner[k as usize]) else { continue };
                let token = sample_index(row, temperature, draws.rng(owner[k as usize]));
                out[k as usize] = Some(Prediction { token: token as u32, logp: row[token] });
            }
        }
        let out = out
            .into_iter()
            .map(|p| p.ok_or_else(|| DiffusionError::InvalidBatch("no prediction was computed for a position".into())))
            .collect::<Result<Vec<_>>>()?;
        let mut it = out.into_iter();
        Ok(positions.iter().map(|ps| it.by_ref().take(ps.len()).collect()).collect())
    }
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
