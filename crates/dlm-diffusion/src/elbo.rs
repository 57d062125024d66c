//! Scoring a sequence by the diffusion ELBO, per token: the Monte-Carlo estimate of LLaDA's
//! `get_log_likelihood` (ML-GSAI/LLaDA `get_log_likelihood.py`, Appendix B.5 of its paper)
//! split into one term per scored position.
//!
//! For `L` scored positions `x_1 … x_L` of a canvas (the rest, e.g. `<s>`/`</s>`, is never
//! masked), sample `s = 1 … S` masks `k_s` of the `L` positions (the level `k_s` stratified
//! over `1 … L` as LLaDA's `forward_process` does: `k_s = k_0 + ⌊s·L/S⌋` wrapped into
//! `1 … L` with `k_0` uniform; the positions a uniform random subset of that size), run the
//! model once per mask and give position `i` the term
//!
//! ```text
//! term_i = (1/S) Σ_s 1[i masked in s] · log p_θ(x_i | x with mask s) / (k_s / L)
//! ```
//!
//! `Σ_i term_i` is exactly LLaDA's estimate (its `-loss`, with the prompt empty and every
//! scored position in the answer), a lower bound on `log p(x)` in expectation; each term is
//! unbiased for `E_k E[log p_θ(x_i | x_i and k−1 other random positions masked)]`, the mean
//! log-probability of the token when it is hidden together with a uniformly random number
//! of others. `top` ranks every vocabulary entry `v` by the same estimator (`x_i` replaced
//! by `v`), so "the token is the greedy one" means it has the largest term of all.
//!
//! The masks are a function of `(seed, S, L)` alone, drawn before anything runs, and the
//! samples are run in groups whose size depends only on the canvas length, so an estimate
//! does not depend on what else a server is doing. [`ElboRun`] advances one group at a time
//! (a server interleaves it with denoising steps); [`elbo_terms`] runs it to the end.

use crate::canvas::SpecialIds;
use crate::error::{DiffusionError, Result};
use crate::sampler::top_n;
use candle_core::Tensor;
use dlm_models::MaskedLm;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Canvas tokens run through the model in one forward pass (a group of samples).
const GROUP_TOKENS: usize = 4096;
/// Masked positions projected through the vocabulary at once (bounds the `[n, V]` buffer).
const PROJECT_CHUNK: usize = 256;
/// The excluded id that forbids nothing (past every vocabulary): the ELBO takes the model's
/// whole distribution, `<mask>` included, as LLaDA's cross-entropy does.
const NO_EXCLUDED: u32 = u32::MAX;

/// The per-position terms of one estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct ElboTerms {
    /// Per scored position: its term (see the module docs); ≤ 0.
    pub terms: Vec<f32>,
    /// Per scored position: in how many of the samples it was masked (a position masked in
    /// none has the term 0).
    pub masked: Vec<usize>,
    /// Per scored position: the `top` vocabulary entries by the same estimator, largest
    /// first (ties to the lower id); for a position masked in no sample, just its token.
    pub top: Vec<Vec<(u32, f32)>>,
    /// Monte-Carlo samples (forward passes) taken.
    pub samples: usize,
}

impl ElboTerms {
    /// `Σ_i term_i`: the ELBO estimate of the scored tokens.
    pub fn total(&self) -> f64 {
        self.terms.iter().map(|&t| t as f64).sum()
    }
}

/// An estimate in progress (see the module docs).
pub struct ElboRun {
    ids: Vec<u32>,
    /// Canvas positions scored, ascending.
    scored: Vec<usize>,
    /// Per sample: the indices (into `scored`) it masks, ascending.
    masks: Vec<Vec<usize>>,
    next: usize,
    group: usize,
    top: usize,
    special: SpecialIds,
    vocab: usize,
    /// `[L, V]` row-major: Σ_s w_s · 1[i masked in s] · log p_s(v).
    acc: Vec<f32>,
    masked: Vec<usize>,
}

impl ElboRun {
    /// Prepares `samples` masks of the `scored` positions of canvas `ids` with a generator
    /// seeded with `seed`. `top`: vocabulary entries to rank per position.
    pub fn new(
        model: &dyn MaskedLm,
        ids: Vec<u32>,
        scored: Vec<usize>,
        samples: usize,
        seed: u64,
        top: usize,
        special: SpecialIds,
    ) -> Result<ElboRun> {
        if samples == 0 {
            return Err(DiffusionError::InvalidConfig("the ELBO needs at least 1 Monte-Carlo sample".into()));
        }
        if ids.len() > model.max_sequence_length() {
            return Err(DiffusionError::InvalidConfig(format!(
                "the sequence takes {} positions but the model allows {}",
                ids.len(),
                model.max_sequence_length()
            )));
        }
        let vocab = model.vocab_size();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(DiffusionError::InvalidConfig(format!(
                "token id {id} is outside the model's vocabulary of {vocab}"
            )));
        }
        if scored.windows(2).any(|w| w[0] >= w[1]) || scored.last().is_some_and(|&p| p >= ids.len()) {
            return Err(DiffusionError::InvalidConfig(
                "scored positions must be ascending and inside the sequence".into(),
            ));
        }
        let l = scored.len();
        let masks = if l == 0 { Vec::new() } else { sample_masks(l, samples, seed) };
        let group = (GROUP_TOKENS / ids.len().max(1)).clamp(1, samples);
        let acc = vec![0f32; l * vocab];
        Ok(ElboRun { ids, scored, masks, next: 0, group, top, special, vocab, acc, masked: vec![0; l] })
    }

    /// Samples still to run.
    pub fn remaining(&self) -> usize {
        self.masks.len() - self.next
    }

    pub fn is_done(&self) -> bool {
        self.remaining() == 0
    }

    /// Runs the next group of samples (one forward pass).
    pub fn advance(&mut self, model: &dyn MaskedLm) -> Result<()> {
        let end = (self.next + self.group).min(self.masks.len());
        if self.next == end {
            return Ok(());
        }
        let (l, s_total) = (self.scored.len(), self.masks.len());
        let mut rows: Vec<Vec<u32>> = Vec::with_capacity(end - self.next);
        let mut flat: Vec<u32> = Vec::new(); // packed position of each masked slot
        let mut target: Vec<(usize, f32)> = Vec::new(); // (scored index, weight)
        let mut offset = 0;
        for mask in &self.masks[self.next..end] {
            let mut row = self.ids.clone();
            // w_s = 1 / (S · k_s / L): the 1/p_mask of LLaDA's loss and the 1/S of the mean.
            let weight = (l as f64 / (mask.len() as f64 * s_total as f64)) as f32;
            for &i in mask {
                row[self.scored[i]] = self.special.mask;
                flat.push((offset + self.scored[i]) as u32);
                target.push((i, weight));
                self.masked[i] += 1;
            }
            offset += row.len();
            rows.push(row);
        }
        let inputs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let hidden = model.encode_rows(&inputs, self.special.pad)?; // [Σ len, h]
        let device = model.device();
        for (chunk, targets) in flat.chunks(PROJECT_CHUNK).zip(target.chunks(PROJECT_CHUNK)) {
            let selected = hidden.index_select(&Tensor::from_slice(chunk, chunk.len(), device)?, 0)?; // [m, h]
            let table = model.project_log_probs(&selected, NO_EXCLUDED)?.to_vec2::<f32>()?; // [m, V]
            for (row, &(i, w)) in table.iter().zip(targets) {
                let acc = &mut self.acc[i * self.vocab..(i + 1) * self.vocab];
                for (a, &lp) in acc.iter_mut().zip(row) {
                    *a += w * lp;
                }
            }
        }
        self.next = end;
        Ok(())
    }

    /// The terms, once every sample has run (runs what is left first).
    pub fn finish(mut self, model: &dyn MaskedLm) -> Result<ElboTerms> {
        while !self.is_done() {
            self.advance(model)?;
        }
        let mut terms = Vec::with_capacity(self.scored.len());
        let mut top = Vec::with_capacity(self.scored.len());
        for (i, &p) in self.scored.iter().enumerate() {
            let token = self.ids[p];
            let row = &self.acc[i * self.vocab..(i + 1) * self.vocab];
            terms.push(row[token as usize]);
            top.push(if self.masked[i] == 0 { vec![(token, 0.0)] } else { top_n(row, self.top) });
        }
        Ok(ElboTerms { terms, masked: self.masked, top, samples: self.masks.len() })
    }
}

/// Runs an [`ElboRun`] to the end.
pub fn elbo_terms(
    model: &dyn MaskedLm,
    ids: Vec<u32>,
    scored: Vec<usize>,
    samples: usize,
    seed: u64,
    top: usize,
    special: SpecialIds,
) -> Result<ElboTerms> {
    ElboRun::new(model, ids, scored, samples, seed, top, special)?.finish(model)
}

/// The masks of `samples` samples over `l ≥ 1` positions: levels stratified as LLaDA's
/// `forward_process` (`linspace(k0, k0 + (S−1)·L/S, S)` wrapped into `1 … L`), each a
/// uniform random subset of that size (a shuffle's first `k`), ascending. The offsets are
/// rounded down, not half to even as LLaDA's `torch.round`: with ties (`2s·L/S` odd) the
/// latter makes a sample's level depend on the parity of `k0` (for L = 6, S = 8, sample 2
/// only ever gets even levels), so the levels were not uniform and the estimate biased.
/// `k0 + ⌊s·L/S⌋` mod `L` is uniform for every sample.
fn sample_masks(l: usize, samples: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k0 = rng.random_range(1..=l);
    (0..samples)
        .map(|s| {
            let k = (k0 - 1 + s * l / samples) % l + 1;
            let mut order: Vec<usize> = (0..l).collect();
            order.shuffle(&mut rng);
            let mut mask = order[..k].to_vec();
            mask.sort_unstable();
            mask
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_stratified_and_wrap() {
        // L = 10, S = 4: offsets ⌊0, 2.5, 5, 7.5⌋ = 0, 2, 5, 7 from k0; every level in 1..=10
        // and the four levels spread over the range (pairwise at least 2 apart, modulo 10).
        for seed in 0..20 {
            let masks = sample_masks(10, 4, seed);
            let ks: Vec<usize> = masks.iter().map(Vec::len).collect();
            assert!(ks.iter().all(|&k| (1..=10).contains(&k)), "{ks:?}");
            for a in 0..4 {
                for b in a + 1..4 {
                    let d = (ks[a] as i64 - ks[b] as i64).rem_euclid(10);
                    assert!(d.min(10 - d) >= 2, "{ks:?}");
                }
            }
            for m in &masks {
                assert!(m.windows(2).all(|w| w[0] < w[1]) && m.iter().all(|&i| i < 10));
            }
        }
        // Every sample's level is uniform over seeds (L = 6, S = 8: each level 1..=6 taken
        // by sample 2 about equally often, not only the even ones).
        let mut counts = [0usize; 7];
        for seed in 0..600 {
            counts[sample_masks(6, 8, seed)[2].len()] += 1;
        }
        assert!(counts[1..].iter().all(|&c| (60..=140).contains(&c)), "{counts:?}");
        // Deterministic per seed.
        assert_eq!(sample_masks(7, 3, 5), sample_masks(7, 3, 5));
        assert_ne!(sample_masks(50, 3, 5), sample_masks(50, 3, 6));
    }

    #[test]
    fn terms_sum_to_llada_estimate_and_are_deterministic() {
        use crate::testing::ToyLm;
        use candle_core::{D, Device};
        const SP: SpecialIds = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 3 };
        let lm = ToyLm::new(40, 16, 32, 11);
        let ids: Vec<u32> = [0].into_iter().chain(5..16).chain([2]).collect();
        let scored: Vec<usize> = (1..=11).collect();
        let run = |samples, seed| elbo_terms(&lm, ids.clone(), scored.clone(), samples, seed, 2, SP).unwrap();
        let e = run(16, 3);
        assert_eq!(e, run(16, 3), "deterministic for a fixed seed");
        assert_ne!(e.terms, run(16, 4).terms);
        assert_eq!((e.terms.len(), e.top.len(), e.samples), (11, 11, 16));
        let masks = sample_masks(11, 16, 3);
        assert_eq!(e.masked.iter().sum::<usize>(), masks.iter().map(Vec::len).sum::<usize>());
        for (i, (t, top)) in e.terms.iter().zip(&e.top).enumerate() {
            assert!(t.is_finite() && *t <= 0.0, "{t}");
            assert!(top[0].1 >= *t, "position {i}: {top:?} vs {t}");
        }
        // LLaDA's estimate computed directly: whole logits of each masked canvas (the
        // padded `logits` path, not `encode_rows`), −loss = mean_s Σ_{masked} log p / (k/L).
        let mut reference = 0f64;
        for mask in &masks {
            let mut row = ids.clone();
            for &i in mask {
                row[scored[i]] = SP.mask;
            }
            let t = Tensor::from_vec(row, (1, ids.len()), &Device::Cpu).unwrap();
            let ones = Tensor::ones((1, ids.len()), candle_core::DType::U32, &Device::Cpu).unwrap();
            let logp = candle_nn::ops::log_softmax(&lm.logits(&t, &ones).unwrap(), D::Minus1).unwrap();
            let logp = logp.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
            let k = mask.len() as f64;
            for &i in mask {
                reference += logp[scored[i]][ids[scored[i]] as usize] as f64 / (k / 11.0);
            }
        }
        reference /= 16.0;
        assert!((e.total() - reference).abs() < 1e-3 * reference.abs().max(1.0), "{} vs {reference}", e.total());
        // Unbiased: over many seeds, the estimates of S = 8 average to the exact ELBO, the
        // sum over all 2^L − 1 masks (L = 6 here): (1/L) Σ_k (L/k) mean_{|M|=k} Σ_{i∈M} log p.
        let short: Vec<u32> = [0, 5, 9, 13, 17, 21, 25, 2].to_vec();
        let positions: Vec<usize> = (1..=6).collect();
        let log_p = |mask: &[usize]| -> f64 {
            let mut row = short.clone();
            for &i in mask {
                row[positions[i]] = SP.mask;
            }
            let t = Tensor::from_vec(row, (1, short.len()), &Device::Cpu).unwrap();
            let ones = Tensor::ones((1, short.len()), candle_core::DType::U32, &Device::Cpu).unwrap();
            let logp = candle_nn::ops::log_softmax(&lm.logits(&t, &ones).unwrap(), D::Minus1).unwrap();
            let logp = logp.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
            mask.iter().map(|&i| logp[positions[i]][short[positions[i]] as usize] as f64).sum()
        };
        let mut by_size = [(0f64, 0usize); 7];
        for bits in 1u32..64 {
            let mask: Vec<usize> = (0..6).filter(|&i| bits >> i & 1 == 1).collect();
            let entry = &mut by_size[mask.len()];
            entry.0 += log_p(&mask);
            entry.1 += 1;
        }
        let exact: f64 = (1..=6).map(|k| (6.0 / k as f64) * by_size[k].0 / by_size[k].1 as f64).sum::<f64>() / 6.0;
        let totals: Vec<f64> = (0..400)
            .map(|seed| elbo_terms(&lm, short.clone(), positions.clone(), 8, seed, 0, SP).unwrap().total())
            .collect();
        let mean = totals.iter().sum::<f64>() / 400.0;
        let sd = (totals.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / 399.0).sqrt();
        assert!((mean - exact).abs() < 4.0 * sd / 20.0, "mean {mean} ± {} vs exact {exact}", sd / 20.0);
        // Nothing to score: no terms.
        assert!(elbo_terms(&lm, ids.clone(), Vec::new(), 4, 0, 1, SP).unwrap().terms.is_empty());
    }
}
