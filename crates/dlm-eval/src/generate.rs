//! Generating the responses of a [`Plan`] with a diffusion model (SPEC §4, §5), batched
//! over examples.
//!
//! Length: with the **oracle length** the canvas is the SPEC §2 sequence of the example
//! with its response tokens masked (`dlm_diffusion::Canvas::oracle`, the released code's
//! `oracle_length=True`): `L` = the number of response tokens, **excluding** the final
//! `</s>`, which stays in place as in the §4 canvas `<s> prompt <mask>×L </s>` (LLaDA and
//! Dream, whose generation code appends nothing, get `… prompt <mask>×L`:
//! `Canvas::oracle_for_model`). (The
//! training targets count `</s>` among the maskable positions, §2; the length predictor's
//! class `len(response incl. </s>) − 2` maps back to the same `L = class + 1`, §5.) An
//! empty gold response leaves nothing to generate and predicts the empty string. With a
//! **length beam** `B` the model's length predictor proposes the top-`B` lengths and the
//! hypothesis with the best mean log-probability wins (`generate_with_length_beam`).
//!
//! Examples are sorted by prompt length so that each batch pads little; outputs come back
//! in plan order. Generated tokens are decoded without special tokens, cleaned up when
//! the tokenizer asks for it (`clean_up_tokenization_spaces`), and trimmed.

use dlm_data::{ChatTemplate, SpecialTokens, Tokenizer, clean_up_tokenization, format_pair};
use dlm_diffusion::{
    Canvas, DiffusionError, LengthPredictor, SamplerConfig, SpecialIds, denoise,
    generate_with_length_beam,
};
use dlm_models::MaskedLm;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::plan::Plan;

/// How the number of generation positions is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum LengthMode {
    /// The gold response length (response tokens without `</s>`).
    Oracle,
    /// The length predictor's top-`beam` lengths, best hypothesis kept.
    Predicted { beam: usize },
}

/// Everything that decides the generated text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    pub sampler: SamplerConfig,
    pub length: LengthMode,
    /// Examples per batch (each expands to `beam` canvases with a length beam).
    pub batch_size: usize,
}

/// The model side of generation.
pub struct Generator<'a> {
    pub model: &'a dyn MaskedLm,
    pub tokenizer: &'a Tokenizer,
    pub special: SpecialTokens,
    /// Required for [`LengthMode::Predicted`].
    pub predictor: Option<&'a LengthPredictor>,
    /// Prompts through the model's chat template (see `crate::plan`).
    pub chat: Option<&'a ChatTemplate>,
}

impl Generator<'_> {
    fn ids(&self) -> SpecialIds {
        SpecialIds::from(self.special)
    }

    /// Responses for every planned example, in plan order. `progress` is called with the
    /// number of examples finished after each batch.
    pub fn generate(
        &self,
        plan: &Plan,
        cfg: &GenerationConfig,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<String>> {
        if cfg.batch_size == 0 {
            return Err(EvalError::Setting("batch size must be at least 1".into()));
        }
        cfg.sampler.validate()?;
        let predictor = match cfg.length {
            LengthMode::Oracle => None,
            LengthMode::Predicted { beam } => {
                if beam == 0 {
                    return Err(EvalError::Setting("length beam must be at least 1".into()));
                }
                Some(self.predictor.ok_or_else(|| {
                    EvalError::Setting(
                        "a length beam needs a length predictor in the model directory \
                         (or use the oracle length)"
                            .into(),
                    )
                })?)
            }
        };
        let clean_up = self
            .tokenizer
            .clean_up_tokenization_spaces()?
            .unwrap_or(false);
        let mut order: Vec<usize> = (0..plan.items.len()).collect();
        order.sort_by_key(|&i| plan.items[i].src.len());
        let mut out = vec![String::new(); plan.items.len()];
        for chunk in order.chunks(cfg.batch_size) {
            let generated = match (cfg.length, predictor) {
                (LengthMode::Predicted { beam }, Some(p)) => {
                    self.beam_batch(plan, chunk, p, beam, cfg)?
                }
                _ => self.oracle_batch(plan, chunk, plan.max_length, cfg)?,
            };
            for (&i, tokens) in chunk.iter().zip(generated) {
                out[i] = match tokens {
                    Some(t) => self.decode(&t, clean_up)?,
                    None => String::new(),
                };
            }
            progress(chunk.len());
        }
        Ok(out)
    }

    /// Generated tokens per example of `chunk`; `None` where there is nothing to generate.
    fn oracle_batch(
        &self,
        plan: &Plan,
        chunk: &[usize],
        max_length: usize,
        cfg: &GenerationConfig,
    ) -> Result<Vec<Option<Vec<u32>>>> {
        let ids = self.ids();
        let mut canvases = Vec::with_capacity(chunk.len());
        let mut slot = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let item = &plan.items[i];
            let f = format_pair(&item.src, &item.tgt, &self.special, max_length)?;
            match Canvas::oracle_for_model(self.model, &f.ids, &f.fixed, ids) {
                Ok(c) => {
                    slot.push(Some(canvases.len()));
                    canvases.push(c);
                }
                Err(DiffusionError::EmptyGeneration) => slot.push(None),
                Err(e) => return Err(e.into()),
            }
        }
        let mut outputs: Vec<Option<Vec<u32>>> = if canvases.is_empty() {
            Vec::new()
        } else {
            denoise(self.model, &canvases, &cfg.sampler, ids)?
                .into_iter()
                .map(|d| Some(d.generated))
                .collect()
        };
        Ok(slot
            .into_iter()
            .map(|s| s.and_then(|k| outputs.get_mut(k).and_then(Option::take)))
            .collect())
    }

    fn beam_batch(
        &self,
        plan: &Plan,
        chunk: &[usize],
        predictor: &LengthPredictor,
        beam: usize,
        cfg: &GenerationConfig,
    ) -> Result<Vec<Option<Vec<u32>>>> {
        let max = self.model.max_sequence_length();
        // A prompt needs room for at least one generated token and </s>.
        let prefixes: Vec<(usize, Vec<u32>)> = chunk
            .iter()
            .enumerate()
            .filter_map(|(k, &i)| {
                let src = &plan.items[i].src;
                let prefix = src[..src.len().saturating_sub(1)].to_vec();
                (prefix.len() + 2 <= max).then_some((k, prefix))
            })
            .collect();
        let mut out = vec![None; chunk.len()];
        if prefixes.is_empty() {
            return Ok(out);
        }
        let just: Vec<Vec<u32>> = prefixes.iter().map(|(_, p)| p.clone()).collect();
        let choices = generate_with_length_beam(
            self.model,
            predictor,
            &just,
            beam,
            &cfg.sampler,
            self.ids(),
        )?;
        for ((k, _), choice) in prefixes.into_iter().zip(choices) {
            out[k] = Some(choice.best.generated);
        }
        Ok(out)
    }

    fn decode(&self, tokens: &[u32], clean_up: bool) -> Result<String> {
        let text = self.tokenizer.decode(tokens, true)?;
        let text = if clean_up {
            clean_up_tokenization(&text)
        } else {
            text
        };
        Ok(text.trim().to_string())
    }
}
