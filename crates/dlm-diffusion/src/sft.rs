//! LLaDA's supervised finetuning objective (Nie et al. 2025, "Large Language Diffusion
//! Models", Appendix B.1; the recipe of `GUIDELINES.md`, section "SFT", in
//! github.com/ML-GSAI/LLaDA at commit b7e6c3565f194352da44b38dd12b6970597309f3):
//!
//! ```text
//! per example r:     t_r ~ U(0, 1),   p_r = (1 − ε)·t_r + ε            (ε = 1e-3)
//! per response pos:  masked ~ Bernoulli(p_r)   (prompt positions are never masked)
//! loss = 1/B · Σ_r Σ_{masked j in r} CE(logits_j, x_j) / p_r / answer_len_r
//! ```
//!
//! `answer_len_r` counts every response position of row r, the final `</s>` included
//! (the reference's `answer_lengths = Σ (1 − prompt_mask)`, its EOS padding included when
//! the caller pads with EOS). Unlike the RDM objective of SPEC §3 ([`crate::objective`])
//! there is no discrete timestep, no coupled second copy, no `T − (t−1)` weight and no
//! label smoothing: one noisy copy per example, continuous `t`, weight `1/p_r`.
//!
//! As in [`crate::objective`], the vocabulary projection runs only at the masked
//! positions (`encode`, gather, `project`); the backbone hands out, at each position, the
//! distribution over the token at that position (Dream's one-position shift is inside
//! the backbone), so nothing here is model-specific.

use crate::batch::TokenBatch;
use crate::error::{DiffusionError, Result};
use crate::objective::attended;
use candle_core::{D, DType, Tensor};
use dlm_models::MaskedLm;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// ε of LLaDA's `forward_process` (`p_mask = (1 − ε)·t + ε`).
pub const LLADA_MASK_EPS: f64 = 1e-3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftConfig {
    /// ε: the smallest masking probability (LLaDA: 1e-3).
    pub eps: f64,
    pub mask_id: u32,
    /// Padding on the right of shorter rows; never attended, never scored.
    pub pad_id: u32,
}

impl SftConfig {
    /// LLaDA's recipe: ε = 1e-3.
    pub fn llada(mask_id: u32, pad_id: u32) -> Self {
        SftConfig { eps: LLADA_MASK_EPS, mask_id, pad_id }
    }

    fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.eps) {
            return Err(DiffusionError::InvalidConfig(format!("the masking floor ε must be in [0, 1), got {}", self.eps)));
        }
        Ok(())
    }
}

/// The noise of one batch: the masking probability of each row and the masked positions.
#[derive(Debug, Clone, PartialEq)]
pub struct SftMasks {
    /// `[B]`: `p_mask` of each row, in `(0, 1]` for rows with masked positions.
    pub p_mask: Vec<f64>,
    /// `[B * seq]`: true where the token is replaced by `<mask>` (maskable positions only).
    pub masked: Vec<bool>,
}

impl SftMasks {
    /// Checks shapes against `batch`, that only maskable positions are masked and that a
    /// row with masked positions has `p_mask` in `(0, 1]` (for masks built by hand).
    pub fn validate(&self, batch: &TokenBatch) -> Result<()> {
        let (b, s) = (batch.batch, batch.seq);
        if self.p_mask.len() != b || self.masked.len() != b * s {
            return Err(DiffusionError::InvalidBatch(format!(
                "SFT masks have {} probabilities and {} mask flags, expected {b} and {}",
                self.p_mask.len(),
                self.masked.len(),
                b * s
            )));
        }
        if self.masked.iter().zip(&batch.maskable).any(|(&m, &ok)| m && !ok) {
            return Err(DiffusionError::InvalidBatch("a position that is not maskable is masked".into()));
        }
        for r in 0..b {
            let p = self.p_mask[r];
            if self.masked[r * s..(r + 1) * s].iter().any(|&m| m) && !(p > 0.0 && p <= 1.0) {
                return Err(DiffusionError::InvalidBatch(format!("row {r} has masked positions but p_mask {p} outside (0, 1]")));
            }
        }
        Ok(())
    }
}

/// LLaDA's `forward_process` on the maskable positions: per row `t ~ U[0, 1)` and
/// `p = (1 − eps)·t + eps`, then per maskable position (in order) `u ~ U[0, 1)`, masked
/// when `u < p`. Fixed positions and padding draw nothing, so the noise of a row does not
/// depend on how much padding its batch adds.
pub fn sample_sft_masks(batch: &TokenBatch, eps: f64, rng: &mut impl Rng) -> Result<SftMasks> {
    batch.validate()?;
    SftConfig { eps, mask_id: 0, pad_id: 0 }.validate()?;
    let (b, s) = (batch.batch, batch.seq);
    let mut p_mask = Vec::with_capacity(b);
    let mut masked = vec![false; b * s];
    for r in 0..b {
        let t: f64 = rng.random();
        let p = (1.0 - eps) * t + eps;
        p_mask.push(p);
        let row = r * s..(r + 1) * s;
        for (m, &ok) in masked[row.clone()].iter_mut().zip(&batch.maskable[row]) {
            if ok {
                let u: f64 = rng.random();
                *m = u < p;
            }
        }
    }
    Ok(SftMasks { p_mask, masked })
}

/// What one evaluation of the SFT objective measured (sums, so that callers aggregate
/// over accumulation steps exactly).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SftMetrics {
    /// The value of the returned loss.
    pub loss: f64,
    /// `correct / masked_tokens` (0 when nothing was masked).
    pub accuracy: f64,
    /// Masked positions whose argmax prediction is the original token.
    pub correct: usize,
    pub masked_tokens: usize,
    /// Response positions of the batch (Σ answer lengths).
    pub answer_tokens: usize,
    /// Mean `p_mask` over the rows.
    pub mean_p_mask: f64,
}

#[derive(Debug, Clone)]
pub struct SftOutput {
    /// Scalar f32 loss, differentiable with respect to the model's variables.
    pub loss: Tensor,
    pub metrics: SftMetrics,
}

/// Draws the masks with `rng` ([`sample_sft_masks`]), then evaluates the loss.
pub fn sft_objective(model: &dyn MaskedLm, batch: &TokenBatch, cfg: &SftConfig, rng: &mut impl Rng) -> Result<SftOutput> {
    cfg.validate()?;
    let masks = sample_sft_masks(batch, cfg.eps, rng)?;
    sft_objective_with(model, batch, &masks, cfg)
}

/// The flat positions scored, their targets and their coefficients `1/(p_r·n_r·B)`.
fn plan(batch: &TokenBatch, masks: &SftMasks) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let (b, s) = (batch.batch, batch.seq);
    let (mut index, mut targets, mut coef) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..b {
        let answer = batch.maskable_in_row(r) as f64;
        let c = 1.0 / (masks.p_mask[r] * answer * b as f64);
        for j in r * s..(r + 1) * s {
            if masks.masked[j] {
                index.push(j as u32);
                targets.push(batch.ids[j]);
                coef.push(c as f32);
            }
        }
    }
    (index, targets, coef)
}

/// The SFT loss for given masks and masking probabilities (the deterministic half of
/// [`sft_objective`], so that tests can feed a fixed mask pattern). The answer length of
/// a row is its number of maskable positions.
pub fn sft_objective_with(model: &dyn MaskedLm, batch: &TokenBatch, masks: &SftMasks, cfg: &SftConfig) -> Result<SftOutput> {
    cfg.validate()?;
    batch.validate()?;
    masks.validate(batch)?;
    let (b, s) = (batch.batch, batch.seq);
    let device = model.device();
    let answer_tokens = batch.maskable.iter().filter(|&&m| m).count();
    let mean_p_mask = if b == 0 { 0.0 } else { masks.p_mask.iter().sum::<f64>() / b as f64 };
    let (index, targets, coef) = plan(batch, masks);
    let m = index.len();
    if m == 0 {
        let metrics = SftMetrics { loss: 0.0, accuracy: 0.0, correct: 0, masked_tokens: 0, answer_tokens, mean_p_mask };
        return Ok(SftOutput { loss: Tensor::zeros((), DType::F32, device)?, metrics });
    }
    let noisy: Vec<u32> = batch.ids.iter().zip(&masks.masked).map(|(&id, &mk)| if mk { cfg.mask_id } else { id }).collect();
    let attention: Vec<u32> = attended(batch, cfg.pad_id).into_iter().map(u32::from).collect();
    let ids = Tensor::from_vec(noisy, (b, s), device)?;
    let attention = Tensor::from_vec(attention, (b, s), device)?;
    let hidden = model.encode(&ids, &attention)?; // [B, seq, h]
    let h = hidden.dim(D::Minus1)?;
    let index = Tensor::from_vec(index, m, device)?;
    let selected = hidden.reshape((b * s, h))?.index_select(&index, 0)?; // [M, h]
    let logits = model.project(&selected)?; // [M, V]
    let target_t = Tensor::from_slice(&targets, m, device)?;
    let terms = dlm_models::cross_entropy(&logits, &target_t)?; // [M, 3]: ce, ent, argmax
    let ce = terms.narrow(1, 0, 1)?.squeeze(1)?;
    let loss = (ce * Tensor::from_vec(coef, m, device)?)?.sum_all()?;
    let predicted = terms.narrow(1, 2, 1)?.squeeze(1)?.to_vec1::<f32>()?;
    let correct = predicted.iter().zip(&targets).filter(|(p, t)| **p as u32 == **t).count();
    let metrics = SftMetrics {
        loss: loss.to_scalar::<f32>()? as f64,
        accuracy: correct as f64 / m as f64,
        correct,
        masked_tokens: m,
        answer_tokens,
        mean_p_mask,
    };
    Ok(SftOutput { loss, metrics })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FixedLm;
    use candle_core::Device;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const MASK: u32 = 8;
    const PAD: u32 = 9;

    // Two rows, seq 4. Row 0: ids [3, 1, 0, 2], prompt = position 0 → answer length 3.
    // Row 1: ids [3, 2, PAD, PAD] padded, prompt = position 0 → answer length 1.
    fn hand_batch() -> TokenBatch {
        TokenBatch::from_rows(&[(vec![3, 1, 0, 2], vec![false, true, true, true]), (vec![3, 2], vec![false, true])], PAD).unwrap()
    }

    // Logits (V = 4) whose CEs are logs of small integers:
    //   row 0 pos 1, target 1: [0, 0, 0, 0]        → ce = ln 4
    //   row 0 pos 2, target 0: [ln3, 0, 0, 0]      → ce = ln 2
    //   row 1 pos 1, target 2: [0, ln3, ln2, 0]    → p = 2/7 → ce = ln 3.5
    fn hand_model() -> FixedLm {
        let (l3, l2) = (3f32.ln(), 2f32.ln());
        let z = [0f32; 4];
        let rows = [z, z, [l3, 0.0, 0.0, 0.0], z, z, [0.0, l3, l2, 0.0], z, z];
        FixedLm::new(rows.concat(), 2, 4, 4)
    }

    fn hand_masks() -> SftMasks {
        SftMasks { p_mask: vec![0.5, 0.25], masked: vec![false, true, true, false, false, true, false, false] }
    }

    #[test]
    fn loss_by_hand() {
        // [(ln4 + ln2)/(0.5·3) + ln3.5/(0.25·1)] / 2 = (1.386294 + 5.011052)/2 = 3.198673
        let out = sft_objective_with(&hand_model(), &hand_batch(), &hand_masks(), &SftConfig::llada(MASK, PAD)).unwrap();
        let m = out.metrics;
        assert!((m.loss - 3.198673).abs() < 1e-5, "{}", m.loss);
        assert_eq!((m.masked_tokens, m.answer_tokens), (3, 4));
        // Argmax: row 0 pos 1 → 0 ≠ 1; row 0 pos 2 → 0 = 0 ✓; row 1 pos 1 → 1 ≠ 2.
        assert_eq!(m.correct, 1);
        assert!((m.mean_p_mask - 0.375).abs() < 1e-12);
    }

    #[test]
    fn masks_follow_the_recipe() {
        // Many rows of 1 prompt + 20 response positions: p in [eps, 1), only response
        // positions masked, the masked fraction of each row close to its p on average.
        let rows: Vec<(Vec<u32>, Vec<bool>)> = (0..400).map(|_| ((0..21).collect(), (0..21).map(|j| j > 0).collect())).collect();
        let batch = TokenBatch::from_rows(&rows, 99).unwrap();
        let masks = sample_sft_masks(&batch, 1e-3, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        masks.validate(&batch).unwrap();
        let mut err = 0.0;
        for (r, &p) in masks.p_mask.iter().enumerate() {
            assert!((1e-3..1.0).contains(&p));
            let row = &masks.masked[r * 21..(r + 1) * 21];
            assert!(!row[0]);
            err += row.iter().filter(|&&m| m).count() as f64 / 20.0 - p;
        }
        assert!((err / 400.0).abs() < 0.02, "mean (fraction − p) = {}", err / 400.0);
        // Deterministic in the seed.
        assert_eq!(masks, sample_sft_masks(&batch, 1e-3, &mut ChaCha8Rng::seed_from_u64(3)).unwrap());
    }

    #[test]
    fn bad_masks_are_rejected() {
        let cfg = SftConfig::llada(MASK, PAD);
        let mut masks = hand_masks();
        masks.masked[0] = true; // the prompt
        assert!(matches!(sft_objective_with(&hand_model(), &hand_batch(), &masks, &cfg), Err(DiffusionError::InvalidBatch(_))));
        let mut masks = hand_masks();
        masks.p_mask[1] = 0.0;
        assert!(matches!(sft_objective_with(&hand_model(), &hand_batch(), &masks, &cfg), Err(DiffusionError::InvalidBatch(_))));
        let cfg = SftConfig { eps: 1.0, ..cfg };
        assert!(matches!(sft_objective_with(&hand_model(), &hand_batch(), &hand_masks(), &cfg), Err(DiffusionError::InvalidConfig(_))));
    }

    #[test]
    fn nothing_masked_gives_zero_loss_and_the_loss_is_differentiable() {
        let batch = hand_batch();
        let cfg = SftConfig::llada(MASK, PAD);
        let none = SftMasks { p_mask: vec![0.5, 0.5], masked: vec![false; 8] };
        let out = sft_objective_with(&hand_model(), &batch, &none, &cfg).unwrap();
        assert_eq!(out.loss.to_scalar::<f32>().unwrap(), 0.0);
        let model = hand_model().trainable(&Device::Cpu);
        let out = sft_objective_with(&model, &batch, &hand_masks(), &cfg).unwrap();
        assert!(out.loss.backward().unwrap().get(model.var()).is_some());
    }
}
