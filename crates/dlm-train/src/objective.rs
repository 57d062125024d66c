//! What the training loop optimises, behind one trait (DESIGN convention 4, burn's
//! `TrainStep`): [`TrainObjective::step`] turns a micro-batch into a differentiable loss
//! and metrics; the loop owns the optimizer, the schedule and the checkpoints. Three
//! objectives plug in:
//!
//! - [`Diffusion`]: the RDM objective of SPEC §3 (dlm-diffusion's `objective`);
//! - [`Autoregressive`]: the AR baseline, the same backbone with causal attention and
//!   next-token cross-entropy on the response positions (incl. `</s>`), mean over tokens;
//! - [`LengthStage`]: the length predictor of SPEC §5 on a frozen backbone;
//! - [`LladaSft`]: LLaDA's SFT objective (dlm-diffusion's `sft_objective`), for the
//!   LLaDA and Dream backbones (or any other: it is written against `MaskedLm`).

use crate::ar::{AR_FLAG, mark_objective};
use crate::beam::{BeamConfig, beam_search};
use crate::data::Example;
use crate::error::{Result, TrainError};
use candle_core::{D, DType, Tensor, Var};
use dlm_diffusion::{
    Canvas, LengthPredictor, ObjectiveConfig, SamplerConfig, SftConfig, SftMasks, SftOutput,
    SpecialIds, TokenBatch, denoise,
};
use dlm_models::{Backbone, MaskedLm};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// Sums over one micro-batch, so that accumulation and validation aggregate exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StepMetrics {
    /// The value of the returned loss.
    pub loss: f64,
    /// Scored positions (or examples, for the length stage) predicted correctly.
    pub correct: usize,
    /// Scored positions (or examples).
    pub scored: usize,
    /// Non-padding tokens of the micro-batch (throughput).
    pub tokens: usize,
}

pub struct StepOutput {
    /// Scalar f32 loss, differentiable with respect to [`TrainObjective::vars`].
    pub loss: Tensor,
    pub metrics: StepMetrics,
}

pub trait TrainObjective {
    /// The trainable variables by name (HF names for the backbone).
    fn vars(&self) -> Vec<(String, Var)>;
    /// `Some(seed)`: training mode with dropout masks drawn from `seed`; `None`: eval.
    fn set_dropout(&mut self, seed: Option<u64>);
    /// Loss and metrics of one micro-batch; `rng` drives the objective's own sampling.
    fn step(&mut self, batch: &[&Example], rng: &mut ChaCha8Rng) -> Result<StepOutput>;
    /// Responses (model ids, without specials) for validation; `None` when the objective
    /// does not generate. Diffusion denoises the oracle-length canvas with `sampler`.
    fn generate(&self, batch: &[&Example], sampler: &SamplerConfig) -> Result<Option<Vec<Vec<u32>>>>;
    /// Writes the trained model (config and weights) into the model directory `dir`.
    fn save(&self, dir: &Path) -> Result<()>;
}

fn tokens(batch: &[&Example]) -> usize {
    batch.iter().map(|e| e.seq.len()).sum()
}

fn special_ids(s: &dlm_data::SpecialTokens) -> SpecialIds {
    SpecialIds {
        bos: s.bos,
        eos: s.eos,
        pad: s.pad,
        mask: s.mask,
    }
}

/// A micro-batch as a [`TokenBatch`]: rows padded on the right with `pad`, maskable = the
/// response positions of each row (`!fixed`: the response and its final `</s>`, SPEC §2).
/// Unlike `TokenBatch::from_rows` this keeps a final `</s>` that is the padding id
/// maskable, as it is for LLaDA and Dream (`</s>` = pad). With `eos_padding = Some(eos)`
/// shorter rows are padded with `eos` instead, and that padding is response too (LLaDA's
/// SFT batching: the padded `</s>` are masked, scored and counted in the answer length).
pub fn response_batch(batch: &[&Example], pad: u32, eos_padding: Option<u32>) -> TokenBatch {
    let seq = batch.iter().map(|e| e.seq.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(batch.len() * seq);
    let mut maskable = Vec::with_capacity(batch.len() * seq);
    for e in batch {
        let fill = seq - e.seq.len();
        ids.extend_from_slice(&e.seq.ids);
        ids.extend(std::iter::repeat_n(eos_padding.unwrap_or(pad), fill));
        maskable.extend(e.seq.fixed.iter().map(|f| !f));
        maskable.extend(std::iter::repeat_n(eos_padding.is_some(), fill));
    }
    TokenBatch {
        ids,
        maskable,
        batch: batch.len(),
        seq,
    }
}

/// Validation responses of a diffusion-trained model: the oracle-length canvas of each
/// example denoised with `cfg`.
fn oracle_generate(
    model: &Backbone,
    special: &dlm_data::SpecialTokens,
    batch: &[&Example],
    cfg: &SamplerConfig,
) -> Result<Option<Vec<Vec<u32>>>> {
    let special = special_ids(special);
    let canvases = batch
        .iter()
        .map(|e| Canvas::oracle(&e.seq.ids, &e.seq.fixed, special))
        .collect::<dlm_diffusion::Result<Vec<_>>>()?;
    let out = denoise(model, &canvases, cfg, special)?;
    Ok(Some(out.into_iter().map(|d| d.generated).collect()))
}

/// SPEC §3 on a trainable backbone.
pub struct Diffusion {
    pub model: Backbone,
    pub cfg: ObjectiveConfig,
    pub special: dlm_data::SpecialTokens,
}

impl TrainObjective for Diffusion {
    fn vars(&self) -> Vec<(String, Var)> {
        self.model.params().vars().to_vec()
    }
    fn set_dropout(&mut self, seed: Option<u64>) {
        self.model.set_dropout(seed);
    }
    fn step(&mut self, batch: &[&Example], rng: &mut ChaCha8Rng) -> Result<StepOutput> {
        let tb = response_batch(batch, self.cfg.pad_id, None);
        let out = dlm_diffusion::objective(&self.model, &tb, &self.cfg, rng)?;
        let m = out.metrics;
        let metrics = StepMetrics {
            loss: m.loss,
            correct: m.correct,
            scored: m.masked_tokens,
            tokens: tokens(batch),
        };
        Ok(StepOutput {
            loss: out.loss,
            metrics,
        })
    }
    fn generate(&self, batch: &[&Example], sampler: &SamplerConfig) -> Result<Option<Vec<Vec<u32>>>> {
        oracle_generate(&self.model, &self.special, batch, sampler)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        self.model.save(dir)?;
        mark_objective(dir, "diffusion")
    }
}

/// The `dlm_objective` value of checkpoints trained with [`LladaSft`].
pub const LLADA_SFT_FLAG: &str = "llada_sft";

/// LLaDA's SFT objective on a trainable backbone (`objective.kind = "llada_sft"`; see
/// `dlm_diffusion::sft_objective` for the formula and the reference): one noisy copy per
/// example, `t ~ U(0, 1)` drawn from the step's seeded `rng`, the response (with its
/// final `</s>`) masked with probability `p = (1 − ε)·t + ε`, the prompt never;
/// `Σ CE/p / answer length`, mean over the micro-batch.
pub struct LladaSft {
    pub model: Backbone,
    pub cfg: SftConfig,
    pub special: dlm_data::SpecialTokens,
    /// Pad rows with `</s>` and score the padding (LLaDA's batching); off: per example.
    pub eos_padding: bool,
}

impl LladaSft {
    /// The micro-batch the objective scores ([`response_batch`]).
    pub fn token_batch(&self, batch: &[&Example]) -> TokenBatch {
        let eos = self.eos_padding.then_some(self.special.eos);
        response_batch(batch, self.cfg.pad_id, eos)
    }

    /// The loss of `batch` for given masks and masking probabilities (`masks` over
    /// [`LladaSft::token_batch`]'s `[B, seq]`): the deterministic half of
    /// [`TrainObjective::step`], for tests with a fixed mask pattern.
    pub fn step_with(&self, batch: &[&Example], masks: &SftMasks) -> Result<StepOutput> {
        let tb = self.token_batch(batch);
        let out = dlm_diffusion::sft_objective_with(&self.model, &tb, masks, &self.cfg)?;
        Ok(Self::output(out, batch))
    }

    fn output(out: SftOutput, batch: &[&Example]) -> StepOutput {
        let m = out.metrics;
        StepOutput {
            loss: out.loss,
            metrics: StepMetrics {
                loss: m.loss,
                correct: m.correct,
                scored: m.masked_tokens,
                tokens: tokens(batch),
            },
        }
    }
}

impl TrainObjective for LladaSft {
    fn vars(&self) -> Vec<(String, Var)> {
        self.model.params().vars().to_vec()
    }
    fn set_dropout(&mut self, seed: Option<u64>) {
        self.model.set_dropout(seed);
    }
    fn step(&mut self, batch: &[&Example], rng: &mut ChaCha8Rng) -> Result<StepOutput> {
        let tb = self.token_batch(batch);
        let out = dlm_diffusion::sft_objective(&self.model, &tb, &self.cfg, rng)?;
        Ok(Self::output(out, batch))
    }
    fn generate(&self, batch: &[&Example], sampler: &SamplerConfig) -> Result<Option<Vec<Vec<u32>>>> {
        oracle_generate(&self.model, &self.special, batch, sampler)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        self.model.save(dir)?;
        mark_objective(dir, LLADA_SFT_FLAG)
    }
}

/// The autoregressive baseline (causal attention; `objective.kind = "ar"`).
pub struct Autoregressive {
    pub model: Backbone,
    pub label_smoothing: f64,
    pub special: dlm_data::SpecialTokens,
    /// Beam size of validation decoding (1: greedy).
    pub beam: usize,
    /// Length normalisation exponent of beam search.
    pub len_penalty: f64,
}

impl Autoregressive {
    /// Flat `[rows × seq]` positions whose hidden state predicts a response token, and
    /// those tokens: position `i` predicts `ids[i+1]` for every response position `i+1`.
    fn plan(batch: &[&Example], seq: usize) -> (Vec<u32>, Vec<u32>) {
        let (mut index, mut targets) = (Vec::new(), Vec::new());
        for (r, e) in batch.iter().enumerate() {
            let first = e.seq.n_fixed().max(1);
            for j in first..e.seq.len() {
                index.push((r * seq + j - 1) as u32);
                targets.push(e.seq.ids[j]);
            }
        }
        (index, targets)
    }
}

impl TrainObjective for Autoregressive {
    fn vars(&self) -> Vec<(String, Var)> {
        self.model.params().vars().to_vec()
    }
    fn set_dropout(&mut self, seed: Option<u64>) {
        self.model.set_dropout(seed);
    }
    fn step(&mut self, batch: &[&Example], _rng: &mut ChaCha8Rng) -> Result<StepOutput> {
        let pad = self.special.pad;
        let seq = batch.iter().map(|e| e.seq.len()).max().unwrap_or(0);
        let mut ids = vec![pad; batch.len() * seq];
        for (r, e) in batch.iter().enumerate() {
            ids[r * seq..r * seq + e.seq.len()].copy_from_slice(&e.seq.ids);
        }
        let (index, targets) = Self::plan(batch, seq);
        let m = index.len();
        let device = self.model.device().clone();
        if m == 0 {
            let metrics = StepMetrics {
                tokens: tokens(batch),
                ..Default::default()
            };
            return Ok(StepOutput {
                loss: Tensor::zeros((), DType::F32, &device)?,
                metrics,
            });
        }
        let attention: Vec<u32> = ids.iter().map(|&t| u32::from(t != pad)).collect();
        let ids = Tensor::from_vec(ids, (batch.len(), seq), &device)?;
        let attention = Tensor::from_vec(attention, (batch.len(), seq), &device)?;
        let hidden = self.model.encode(&ids, &attention)?; // [B, seq, h]
        let h = hidden.dim(D::Minus1)?;
        let index_t = Tensor::from_vec(index, m, &device)?;
        let selected = hidden
            .reshape((batch.len() * seq, h))?
            .index_select(&index_t, 0)?; // [M, h]
        let logits = self.model.project(&selected)?.to_dtype(DType::F32)?; // [M, V]
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let target_t = Tensor::from_slice(&targets, (m, 1), &device)?;
        let nll = (logp.gather(&target_t, 1)?.neg()?.sum_all()? / m as f64)?; // mean CE
        let eps = self.label_smoothing;
        let loss = if eps > 0.0 {
            let smooth = (logp.mean(D::Minus1)?.neg()?.sum_all()? / m as f64)?;
            ((nll * (1.0 - eps))? + (smooth * eps)?)?
        } else {
            nll
        };
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let correct = predicted
            .iter()
            .zip(&targets)
            .filter(|(p, t)| p == t)
            .count();
        let metrics = StepMetrics {
            loss: loss.to_scalar::<f32>()? as f64,
            correct,
            scored: m,
            tokens: tokens(batch),
        };
        Ok(StepOutput { loss, metrics })
    }
    fn generate(&self, batch: &[&Example], _sampler: &SamplerConfig) -> Result<Option<Vec<Vec<u32>>>> {
        let max = self.model.max_sequence_length();
        batch
            .iter()
            .map(|e| {
                let budget = max
                    .saturating_sub(e.prefix().len())
                    .min(2 * e.seq.n_maskable() + 10);
                let cfg = BeamConfig {
                    beam: self.beam,
                    len_penalty: self.len_penalty,
                    max_new: budget,
                };
                Ok(beam_search(&self.model, e.prefix(), &cfg, &self.special)?.tokens)
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        self.model.save(dir)?;
        mark_objective(dir, AR_FLAG)
    }
}

/// SPEC §5: the length predictor on a frozen backbone loaded from `source`.
pub struct LengthStage {
    pub model: Backbone,
    pub predictor: LengthPredictor,
    pub special: dlm_data::SpecialTokens,
    /// The finetuned model directory whose files the checkpoints reuse.
    pub source: PathBuf,
    dropout: Option<ChaCha8Rng>,
}

impl LengthStage {
    pub fn new(
        model: Backbone,
        predictor: LengthPredictor,
        special: dlm_data::SpecialTokens,
        source: PathBuf,
    ) -> Self {
        LengthStage {
            model,
            predictor,
            special,
            source,
            dropout: None,
        }
    }
}

impl TrainObjective for LengthStage {
    fn vars(&self) -> Vec<(String, Var)> {
        self.predictor
            .vars()
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("length_predictor.{i}"), v))
            .collect()
    }
    fn set_dropout(&mut self, seed: Option<u64>) {
        self.dropout = seed.map(ChaCha8Rng::seed_from_u64);
    }
    fn step(&mut self, batch: &[&Example], _rng: &mut ChaCha8Rng) -> Result<StepOutput> {
        let prefixes: Vec<Vec<u32>> = batch.iter().map(|e| e.prefix().to_vec()).collect();
        let lens: Vec<usize> = batch.iter().map(|e| e.seq.n_maskable()).collect();
        let (loss, m) = self.predictor.loss(
            &self.model,
            &prefixes,
            &lens,
            self.special.pad,
            self.dropout.as_mut(),
        )?;
        let metrics = StepMetrics {
            loss: m.loss,
            correct: m.correct,
            scored: m.examples,
            tokens: tokens(batch),
        };
        Ok(StepOutput { loss, metrics })
    }
    fn generate(&self, _batch: &[&Example], _sampler: &SamplerConfig) -> Result<Option<Vec<Vec<u32>>>> {
        Ok(None)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        copy_model_files(&self.source, dir)?;
        self.predictor.save(dir)?;
        Ok(())
    }
}

/// Copies (hard-links where possible) the config and weight files of a model directory;
/// the trainer writes `vocab_map.json` and the tokenizer files itself.
fn copy_model_files(from: &Path, to: &Path) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| TrainError::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io(from, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let wanted = name == "config.json"
            || name.ends_with(".safetensors")
                && !name.starts_with("length_predictor")
                && !name.starts_with("trainer_state")
            || name == "model.safetensors.index.json"
            || name == "pytorch_model.bin";
        if !wanted || !entry.path().is_file() {
            continue;
        }
        let dest = to.join(name);
        if std::fs::hard_link(entry.path(), &dest).is_err() {
            std::fs::copy(entry.path(), &dest).map_err(|e| TrainError::io(&dest, e))?;
        }
    }
    Ok(())
}
