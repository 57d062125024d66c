//! Length-beam generation (SPEC §5, inference): the top-B predicted lengths per prompt,
//! all `prompts × B` canvases denoised in one batch, and per prompt the hypothesis with
//! the highest mean stored log-probability over its generated tokens.

use super::network::LengthPredictor;
use crate::canvas::{Canvas, SpecialIds};
use crate::error::{DiffusionError, Result};
use crate::sampler::{Denoised, SamplerConfig, denoise};
use dlm_models::MaskedLm;

/// The outcome of a length beam for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct BeamChoice {
    /// The winning hypothesis.
    pub best: Denoised,
    /// The lengths tried, most likely first.
    pub lengths: Vec<usize>,
    /// Each hypothesis's mean stored log-probability, aligned with `lengths`.
    pub mean_logprobs: Vec<f64>,
    /// Index of the winner in `lengths` (the first of equal scores).
    pub chosen: usize,
}

impl BeamChoice {
    /// The hypothesis with the highest mean stored log-probability (the first of equal
    /// scores) among `hyps`, denoised with `lengths` (aligned, most likely first).
    pub fn pick(lengths: Vec<usize>, hyps: Vec<Denoised>) -> Result<BeamChoice> {
        let mean_logprobs: Vec<f64> = hyps.iter().map(|h| h.mean_logprob).collect();
        let chosen = (0..hyps.len()).fold(0, |best, i| if mean_logprobs[i] > mean_logprobs[best] { i } else { best });
        let best = hyps.into_iter().nth(chosen).ok_or_else(|| DiffusionError::InvalidBatch("length beam produced no hypothesis".into()))?;
        Ok(BeamChoice { best, lengths, mean_logprobs, chosen })
    }
}

/// Generates for every prefix (`<s> prompt`) with a length beam of `beam`.
pub fn generate_with_length_beam(
    model: &dyn MaskedLm,
    predictor: &LengthPredictor,
    prefixes: &[Vec<u32>],
    beam: usize,
    cfg: &SamplerConfig,
    special: SpecialIds,
) -> Result<Vec<BeamChoice>> {
    cfg.validate()?;
    let lengths = predictor.top_lengths(model, prefixes, beam, special.pad)?;
    let mut canvases = Vec::with_capacity(prefixes.len() * beam);
    for (prefix, ls) in prefixes.iter().zip(&lengths) {
        for &l in ls {
            canvases.push(Canvas::for_model(model, prefix, l, special)?);
        }
    }
    let mut outputs = denoise(model, &canvases, cfg, special)?.into_iter();
    let mut choices = Vec::with_capacity(prefixes.len());
    for ls in lengths {
        let hyps: Vec<Denoised> = outputs.by_ref().take(ls.len()).collect();
        choices.push(BeamChoice::pick(ls, hyps)?);
    }
    Ok(choices)
}
