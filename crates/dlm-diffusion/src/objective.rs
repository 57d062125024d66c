//! The training objective of reparameterized absorbing diffusion (SPEC §3; paper Eq. 4 with
//! `λ = 1 - (t-1)/T`): weighted cross-entropy of the original tokens at the masked
//! positions of both coupled copies, with the vocabulary projection computed only there.
//! Variants: constant weighting, a fixed masking ratio (via [`TimestepSampler::Fixed`]) and
//! RDM's original normalisation (SPEC §3.7).

use crate::batch::TokenBatch;
use crate::corruption::{Corruption, TimestepSampler, sample_coupled};
use crate::error::{DiffusionError, Result};
use candle_core::{D, DType, Tensor};
use dlm_models::MaskedLm;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Per-row weight of the DLM form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// `w(t) = T - (t - 1)`, i.e. `T·λ_t` with `λ_t = 1 - (t-1)/T` (the paper's choice).
    Linear,
    /// `w = 1`. (The released code's `constant` option uses `w = T`, the same objective
    /// scaled by T.)
    Constant,
}

/// Per-row weight of RDM's original form, with its 0-based timestep `t0 = t - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RdmWeighting {
    /// `1 - t0/T`.
    Linear,
    /// `1 / (t0 + 1)`.
    Reciprocal,
    /// `1`.
    None,
}

/// How the masked cross-entropies are weighted and normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossForm {
    /// SPEC §3.5: `Σ_rows w(t_r) · Σ_masked ce / N_maskable(r)`, divided by `2B`.
    Dlm { weighting: Weighting },
    /// SPEC §3.7: `Σ_rows r(t_r) · Σ_masked ce / seq`, divided by `2B` (CE averaged over
    /// all `seq` positions of the padded row, unmasked ones contributing 0).
    Rdm { weighting: RdmWeighting },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveConfig {
    /// T (50 in the paper).
    pub timesteps: u32,
    pub sampler: TimestepSampler,
    pub form: LossForm,
    /// ε of SPEC §3.6 (0 in the released scripts; 0.1 without pretraining and in RDM).
    pub label_smoothing: f64,
    pub mask_id: u32,
    pub pad_id: u32,
}

impl ObjectiveConfig {
    /// The paper's objective: T = 50, uniform coupled timesteps, linear weights, ε = 0.
    pub fn paper(mask_id: u32, pad_id: u32) -> Self {
        ObjectiveConfig {
            timesteps: 50,
            sampler: TimestepSampler::Uniform,
            form: LossForm::Dlm { weighting: Weighting::Linear },
            label_smoothing: 0.0,
            mask_id,
            pad_id,
        }
    }

    /// RDM's original form: linear reweighting `1 - t0/T`, CE over all positions, ε = 0.1.
    pub fn rdm(mask_id: u32, pad_id: u32) -> Self {
        ObjectiveConfig {
            form: LossForm::Rdm { weighting: RdmWeighting::Linear },
            label_smoothing: 0.1,
            ..Self::paper(mask_id, pad_id)
        }
    }

    fn validate(&self) -> Result<()> {
        if self.timesteps == 0 {
            return Err(DiffusionError::InvalidConfig("the number of diffusion timesteps T must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(DiffusionError::InvalidConfig(format!(
                "label smoothing must be in [0, 1), got {}",
                self.label_smoothing
            )));
        }
        Ok(())
    }
}

/// What one objective evaluation measured; sums (`correct`, token counts) are given so
/// that callers can aggregate over accumulation steps exactly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ObjectiveMetrics {
    /// The value of the returned loss.
    pub loss: f64,
    /// The weighted cross-entropy term alone (equal to `loss` when ε = 0).
    pub nll: f64,
    /// `correct / masked_tokens` (0 when nothing was masked).
    pub accuracy: f64,
    /// Masked positions whose argmax prediction is the original token.
    pub correct: usize,
    /// Masked positions over both copies.
    pub masked_tokens: usize,
    /// Maskable positions of the batch (one copy).
    pub maskable_tokens: usize,
    /// Mean timestep over the `2B` rows.
    pub mean_t: f64,
}

/// The differentiable scalar loss (f32) and its metrics.
#[derive(Debug, Clone)]
pub struct ObjectiveOutput {
    pub loss: Tensor,
    pub metrics: ObjectiveMetrics,
}

/// Draws timesteps and coupled masks with `rng`, then evaluates the loss.
pub fn objective(model: &dyn MaskedLm, batch: &TokenBatch, cfg: &ObjectiveConfig, rng: &mut impl Rng) -> Result<ObjectiveOutput> {
    cfg.validate()?;
    let corruption = sample_coupled(batch, cfg.timesteps, cfg.sampler, rng)?;
    objective_with(model, batch, &corruption, cfg)
}

/// Host-side plan of the loss: which flat positions of the `[2B, seq]` corrupted batch are
/// scored, their targets, and the coefficient of each position's CE (`nll`) and of its
/// label-smoothing term (`smooth`), so that `loss = (1-ε)·Σ nll_j·ce_j + ε·Σ smooth_j·ent_j`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LossPlan {
    pub index: Vec<u32>,
    pub targets: Vec<u32>,
    pub nll: Vec<f32>,
    pub smooth: Vec<f32>,
}

pub(crate) fn plan(batch: &TokenBatch, corruption: &Corruption, cfg: &ObjectiveConfig) -> LossPlan {
    let (b, s) = (batch.batch, batch.seq);
    let rows = (2 * b) as f64;
    let big_t = cfg.timesteps as f64;
    let mut out = LossPlan { index: vec![], targets: vec![], nll: vec![], smooth: vec![] };
    for r in 0..2 * b {
        let src = r % b;
        let t = corruption.t[r] as f64;
        let (nll, smooth) = match cfg.form {
            LossForm::Dlm { weighting } => {
                let n = batch.maskable_in_row(src) as f64;
                let w = match weighting {
                    Weighting::Linear => big_t - (t - 1.0),
                    Weighting::Constant => 1.0,
                };
                (w / n / rows, big_t / n / rows)
            }
            LossForm::Rdm { weighting } => {
                let t0 = t - 1.0;
                let w = match weighting {
                    RdmWeighting::Linear => 1.0 - t0 / big_t,
                    RdmWeighting::Reciprocal => 1.0 / (t0 + 1.0),
                    RdmWeighting::None => 1.0,
                };
                (w / s as f64 / rows, 1.0 / s as f64 / rows)
            }
        };
        for j in 0..s {
            if corruption.masked[r * s + j] {
                out.index.push((r * s + j) as u32);
                out.targets.push(batch.ids[src * s + j]);
                out.nll.push(nll as f32);
                out.smooth.push(smooth as f32);
            }
        }
    }
    out
}

/// `[B * seq]`: the real (attended) positions of `batch`: ids other than `pad`, and every
/// position up to the last maskable one of its row. Padding is only ever on the right and
/// never maskable, so this is `ids != pad` unless a row holds the padding id itself, as
/// LLaDA's and Dream's rows do (their `</s>` is their padding id).
pub(crate) fn attended(batch: &TokenBatch, pad: u32) -> Vec<bool> {
    let s = batch.seq;
    let mut out = Vec::with_capacity(batch.batch * s);
    for r in 0..batch.batch {
        let row = r * s..(r + 1) * s;
        let last = batch.maskable[row.clone()].iter().rposition(|&m| m);
        out.extend(batch.ids[row].iter().enumerate().map(|(j, &id)| id != pad || last.is_some_and(|l| j <= l)));
    }
    out
}

/// Evaluates the loss for given timesteps and masks (the deterministic half of
/// [`objective`], so that tests can feed fixed corruptions).
pub fn objective_with(model: &dyn MaskedLm, batch: &TokenBatch, corruption: &Corruption, cfg: &ObjectiveConfig) -> Result<ObjectiveOutput> {
    cfg.validate()?;
    batch.validate()?;
    corruption.validate(batch, cfg.timesteps)?;
    let (b, s) = (batch.batch, batch.seq);
    let device = model.device();
    let maskable_tokens = batch.maskable.iter().filter(|&&m| m).count();
    let mean_t = if b == 0 { 0.0 } else { corruption.t.iter().map(|&t| t as f64).sum::<f64>() / (2 * b) as f64 };
    let plan = plan(batch, corruption, cfg);
    let m = plan.index.len();
    if m == 0 {
        let metrics = ObjectiveMetrics { loss: 0.0, nll: 0.0, accuracy: 0.0, correct: 0, masked_tokens: 0, maskable_tokens, mean_t };
        return Ok(ObjectiveOutput { loss: Tensor::zeros((), DType::F32, device)?, metrics });
    }

    // x_t: both copies stacked, masked positions replaced by <mask>.
    let mut x_t = Vec::with_capacity(2 * b * s);
    for r in 0..2 * b {
        let src = &batch.ids[(r % b) * s..(r % b + 1) * s];
        x_t.extend(src.iter().zip(&corruption.masked[r * s..(r + 1) * s]).map(|(&id, &mk)| if mk { cfg.mask_id } else { id }));
    }
    // Both copies attend to the real positions of their source row (not `x_t != pad`:
    // with LLaDA/Dream `</s>` is the padding id, and an unmasked final `</s>` is real).
    let real = attended(batch, cfg.pad_id);
    let attention: Vec<u32> = real.iter().chain(&real).map(|&a| u32::from(a)).collect();
    let ids = Tensor::from_vec(x_t, (2 * b, s), device)?;
    let attention = Tensor::from_vec(attention, (2 * b, s), device)?;
    let hidden = model.encode(&ids, &attention)?; // [2B, seq, h]
    let h = hidden.dim(D::Minus1)?;
    let index = Tensor::from_vec(plan.index, m, device)?;
    let selected = hidden.reshape((2 * b * s, h))?.index_select(&index, 0)?; // [M, h]
    let logits = model.project(&selected)?; // [M, V], the model's dtype
    let targets = Tensor::from_slice(&plan.targets, m, device)?;
    // Per token: −log p(target), −mean_V log p, argmax; one fused pass over the logits.
    let terms = dlm_models::cross_entropy(&logits, &targets)?; // [M, 3] f32
    let ce = terms.narrow(1, 0, 1)?.squeeze(1)?; // [M]
    let nll = (ce * Tensor::from_vec(plan.nll, m, device)?)?.sum_all()?; // []
    let eps = cfg.label_smoothing;
    let loss = if eps > 0.0 {
        let ent = terms.narrow(1, 1, 1)?.squeeze(1)?; // [M]: -mean_V log p
        let smooth = (ent * Tensor::from_vec(plan.smooth, m, device)?)?.sum_all()?;
        ((&nll * (1.0 - eps))? + (smooth * eps)?)?
    } else {
        nll.clone()
    };
    let predicted = terms.narrow(1, 2, 1)?.squeeze(1)?.to_vec1::<f32>()?;
    let correct = predicted.iter().zip(&plan.targets).filter(|(p, t)| **p as u32 == **t).count();
    let metrics = ObjectiveMetrics {
        loss: loss.to_scalar::<f32>()? as f64,
        nll: nll.to_scalar::<f32>()? as f64,
        accuracy: correct as f64 / m as f64,
        correct,
        masked_tokens: m,
        maskable_tokens,
        mean_t,
    };
    Ok(ObjectiveOutput { loss, metrics })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FixedLm;
    use candle_core::Device;

    // One example, seq 4: ids [3, 1, 0, 2], maskable [F, T, T, T] → N_maskable = 3.
    // T = 10; ta = 6 masks positions 1 and 2 (copy A), tb = 3 masks position 2 (copy B).
    fn hand_batch() -> (TokenBatch, Corruption) {
        let batch = TokenBatch::from_rows(&[(vec![3, 1, 0, 2], vec![false, true, true, true])], 9).unwrap();
        let corruption = Corruption {
            t: vec![6, 3],
            masked: vec![false, true, true, false, false, false, true, false],
        };
        (batch, corruption)
    }

    // Logits (V = 4) chosen so that the CEs are logs of small integers:
    //   A pos 1, target 1: [0, 0, 0, 0]          → p = 1/4 → ce = ln 4
    //   A pos 2, target 0: [ln3, 0, 0, 0]        → p = 3/6 → ce = ln 2
    //   B pos 2, target 0: [0, ln3, ln2, 0]      → p = 1/7 → ce = ln 7
    fn hand_model() -> FixedLm {
        let l3 = 3f32.ln();
        let l2 = 2f32.ln();
        let z = [0f32; 4];
        let rows = [
            z, z, [l3, 0.0, 0.0, 0.0], z, // copy A
            z, z, [0.0, l3, l2, 0.0], z, // copy B
        ];
        FixedLm::new(rows.concat(), 2, 4, 4)
    }

    fn cfg(form: LossForm, eps: f64) -> ObjectiveConfig {
        ObjectiveConfig { timesteps: 10, sampler: TimestepSampler::Uniform, form, label_smoothing: eps, mask_id: 8, pad_id: 9 }
    }

    fn loss(form: LossForm, eps: f64) -> ObjectiveMetrics {
        let (batch, corruption) = hand_batch();
        objective_with(&hand_model(), &batch, &corruption, &cfg(form, eps)).unwrap().metrics
    }

    #[test]
    fn plan_weights_and_normalisation() {
        // w(6) = 10 - 5 = 5, w(3) = 10 - 2 = 8; divided by N_maskable = 3 and 2B = 2:
        // A: 5/6 = 0.8333 at flat positions 1, 2; B: 8/6 = 1.3333 at flat position 4 + 2.
        // Smoothing coefficient T/N/2B = 10/6 everywhere.
        let (batch, corruption) = hand_batch();
        let p = plan(&batch, &corruption, &cfg(LossForm::Dlm { weighting: Weighting::Linear }, 0.0));
        assert_eq!(p.index, vec![1, 2, 6]);
        assert_eq!(p.targets, vec![1, 0, 0]);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(&p.nll, &[5.0 / 6.0, 5.0 / 6.0, 8.0 / 6.0]));
        assert!(close(&p.smooth, &[10.0 / 6.0; 3]));
        // RDM: t0 = 5, 2 → 1 - t0/T = 0.5, 0.8; divided by seq = 4 and 2B = 2.
        let p = plan(&batch, &corruption, &cfg(LossForm::Rdm { weighting: RdmWeighting::Linear }, 0.0));
        assert!(close(&p.nll, &[0.5 / 8.0, 0.5 / 8.0, 0.8 / 8.0]));
        assert!(close(&p.smooth, &[1.0 / 8.0; 3]));
    }

    #[test]
    fn dlm_linear_loss_by_hand() {
        // [5·(ln4 + ln2)/3 + 8·ln7/3] / 2 = (5·ln8 + 8·ln7)/6
        //   = (10.397208 + 15.567281)/6 = 4.327415
        let m = loss(LossForm::Dlm { weighting: Weighting::Linear }, 0.0);
        assert!((m.loss - 4.327415).abs() < 1e-5, "{}", m.loss);
        assert_eq!((m.masked_tokens, m.maskable_tokens), (3, 3));
        assert!((m.mean_t - 4.5).abs() < 1e-12); // (6 + 3) / 2
    }

    #[test]
    fn constant_weighting_by_hand() {
        // [(ln4 + ln2)/3 + ln7/3] / 2 = (2.079442 + 1.945910)/6 = 0.670892
        let m = loss(LossForm::Dlm { weighting: Weighting::Constant }, 0.0);
        assert!((m.loss - 0.670892).abs() < 1e-5, "{}", m.loss);
    }

    #[test]
    fn rdm_form_by_hand() {
        // linear: [0.5·ln8/4 + 0.8·ln7/4] / 2 = (1.039721 + 1.556728)/8 = 0.324561
        // reciprocal: 1/(t0+1) = 1/6, 1/3: [ln8/24 + ln7/12]/2 = (0.086643 + 0.162159)/2 = 0.124401
        let m = loss(LossForm::Rdm { weighting: RdmWeighting::Linear }, 0.0);
        assert!((m.loss - 0.324561).abs() < 1e-5, "{}", m.loss);
        let m = loss(LossForm::Rdm { weighting: RdmWeighting::Reciprocal }, 0.0);
        assert!((m.loss - 0.124401).abs() < 1e-5, "{}", m.loss);
    }

    #[test]
    fn label_smoothing_by_hand() {
        // ent = -mean_V log p: A1: ln4 = 1.386294; A2: (ln2 + 3·ln6)/4 = 1.517106;
        // B2: (4·ln7 - ln3 - ln2)/4 = 1.497970. Smoothing term: 10·(Σ ent)/3/2 = 7.335617.
        // loss = 0.9·4.327415 + 0.1·7.335617 = 4.628235; nll stays 4.327415.
        let m = loss(LossForm::Dlm { weighting: Weighting::Linear }, 0.1);
        assert!((m.loss - 4.628235).abs() < 1e-5, "{}", m.loss);
        assert!((m.nll - 4.327415).abs() < 1e-5, "{}", m.nll);
    }

    #[test]
    fn accuracy_counts_argmax_hits() {
        // A1 all-zero logits → argmax 0 ≠ 1; A2 argmax 0 = 0 ✓; B2 argmax 1 ≠ 0 → 1/3.
        let m = loss(LossForm::Dlm { weighting: Weighting::Linear }, 0.0);
        assert_eq!(m.correct, 1);
        assert!((m.accuracy - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn nothing_masked_gives_zero_loss() {
        let (batch, mut corruption) = hand_batch();
        corruption.masked = vec![false; 8];
        let out = objective_with(&hand_model(), &batch, &corruption, &cfg(LossForm::Dlm { weighting: Weighting::Linear }, 0.0)).unwrap();
        assert_eq!(out.metrics.masked_tokens, 0);
        assert_eq!(out.loss.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn masking_a_fixed_position_is_rejected() {
        let (batch, mut corruption) = hand_batch();
        corruption.masked[0] = true;
        let r = objective_with(&hand_model(), &batch, &corruption, &cfg(LossForm::Dlm { weighting: Weighting::Linear }, 0.0));
        assert!(matches!(r, Err(DiffusionError::InvalidBatch(_))));
    }

    #[test]
    fn a_final_eos_that_is_the_padding_id_is_attended() {
        // LLaDA/Dream: </s> = pad = 1. Row 0 ends with its real </s>; row 1 is padded.
        let batch = TokenBatch { ids: vec![0, 5, 6, 1, 0, 7, 1, 1], maskable: vec![false, true, true, true, false, true, false, false], batch: 2, seq: 4 };
        assert_eq!(attended(&batch, 1), vec![true, true, true, true, true, true, false, false]);
        // Without the padding id inside rows this is `ids != pad`.
        let (batch, _) = hand_batch();
        assert_eq!(attended(&batch, 9), batch.ids.iter().map(|&id| id != 9).collect::<Vec<_>>());
    }

    #[test]
    fn loss_is_differentiable() {
        // The loss reaches the model's tensors: a Var-backed FixedLm receives a gradient.
        let (batch, corruption) = hand_batch();
        let model = hand_model().trainable(&Device::Cpu);
        let out = objective_with(&model, &batch, &corruption, &cfg(LossForm::Dlm { weighting: Weighting::Linear }, 0.0)).unwrap();
        let grads = out.loss.backward().unwrap();
        assert!(grads.get(model.var()).is_some());
    }
}
