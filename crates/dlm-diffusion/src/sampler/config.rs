//! Sampler configuration as data (SPEC §4): steps, a closed set of strategies, how tokens
//! are chosen from the distribution, the seed and whether to keep the trajectory.

use crate::error::{DiffusionError, Result};
use crate::schedule::Schedule;
use serde::{Deserialize, Serialize};

/// Which decoded positions may be re-masked by a reparameterized step (SPEC §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    /// The masked set after the step is exactly the k lowest-scoring positions.
    Uncond,
    /// A decoded position is re-masked only if it is among the k lowest, the new
    /// prediction equals its token and the new score is below the stored one.
    Cond,
}

/// How the k lowest positions are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopK {
    /// Rank by this step's scores.
    Deterministic,
    /// Rank by `score + scale · rate · Gumbel` (the released `stochastic<scale>` mode).
    Stochastic { scale: f64 },
}

/// The closed set of unmasking strategies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Reparameterized top-k decoding (RDM Algorithm 2; the paper's sampler).
    Reparam { update: Update, schedule: Schedule, topk: TopK },
    /// Mask-predict style: each masked position is unmasked with probability `1/(K-s+1)`.
    Cmlm,
    /// Fill the leftmost mask at each step.
    Ar,
    /// LLaDA: within semi-autoregressive blocks of `block_length` generation positions
    /// (`None`: one block), unmask the most confident masked positions, an even share of
    /// each block per step; decoded tokens are never re-masked. `steps` must be a multiple
    /// of the number of blocks.
    LowConfidence { block_length: Option<usize> },
    /// Fast-dLLM parallel decoding: in the current block, unmask the most confident masked
    /// position and every other one whose probability is at least `threshold`; the number
    /// of steps is adaptive (at most one per generation position) and `steps` is unused.
    ConfidenceThreshold { threshold: f64, block_length: Option<usize> },
}

/// Fast-dLLM's confidence threshold and block length (its paper and evaluation scripts).
pub const FAST_DLLM_THRESHOLD: f64 = 0.9;
pub const FAST_DLLM_BLOCK_LENGTH: usize = 32;
/// Gumbel noise scale of the released RDM code's `stochastic1.0` decoding.
pub const NOISE_SCALE: f64 = 1.0;

/// The strategies by the names `dlm generate --strategy` and the server's `strategy` field
/// use; [`StrategyName::build`] turns a name and its options into a [`Strategy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyName {
    ReparamUncond,
    ReparamCond,
    Stochastic,
    Cmlm,
    Ar,
    Llada,
    FastDllm,
}

/// The options some strategies take; `None` means the strategy's default.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StrategyKnobs {
    /// llada, fast-dllm: generation positions per semi-autoregressive block.
    pub block_length: Option<usize>,
    /// fast-dllm: the confidence threshold.
    pub threshold: Option<f64>,
    /// stochastic: the scale of the Gumbel noise.
    pub noise_scale: Option<f64>,
}

impl StrategyName {
    pub const ALL: [StrategyName; 7] = [
        StrategyName::ReparamUncond,
        StrategyName::ReparamCond,
        StrategyName::Stochastic,
        StrategyName::Cmlm,
        StrategyName::Ar,
        StrategyName::Llada,
        StrategyName::FastDllm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StrategyName::ReparamUncond => "reparam-uncond",
            StrategyName::ReparamCond => "reparam-cond",
            StrategyName::Stochastic => "stochastic",
            StrategyName::Cmlm => "cmlm",
            StrategyName::Ar => "ar",
            StrategyName::Llada => "llada",
            StrategyName::FastDllm => "fast-dllm",
        }
    }

    pub fn parse(name: &str) -> Option<StrategyName> {
        StrategyName::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The knob names (as `--flag` names without dashes: `block-length`, `threshold`,
    /// `noise-scale`) that are given but that this strategy does not use.
    pub fn unused_knobs(self, knobs: &StrategyKnobs) -> Vec<&'static str> {
        use StrategyName::{FastDllm, Llada, Stochastic};
        [
            ("block-length", knobs.block_length.is_some(), matches!(self, Llada | FastDllm)),
            ("threshold", knobs.threshold.is_some(), self == FastDllm),
            ("noise-scale", knobs.noise_scale.is_some(), self == Stochastic),
        ]
        .into_iter()
        .filter(|&(_, given, applies)| given && !applies)
        .map(|(name, _, _)| name)
        .collect()
    }

    /// The strategy, with the defaults of the released code and papers for knobs not given
    /// (llada: one block; fast-dllm: threshold 0.9, blocks of 32; stochastic: scale 1.0).
    pub fn build(self, schedule: Schedule, knobs: StrategyKnobs) -> Strategy {
        let reparam = |update, topk| Strategy::Reparam { update, schedule, topk };
        match self {
            StrategyName::ReparamUncond => reparam(Update::Uncond, TopK::Deterministic),
            StrategyName::ReparamCond => reparam(Update::Cond, TopK::Deterministic),
            StrategyName::Stochastic => {
                reparam(Update::Uncond, TopK::Stochastic { scale: knobs.noise_scale.unwrap_or(NOISE_SCALE) })
            }
            StrategyName::Cmlm => Strategy::Cmlm,
            StrategyName::Ar => Strategy::Ar,
            StrategyName::Llada => Strategy::LowConfidence { block_length: knobs.block_length },
            StrategyName::FastDllm => Strategy::ConfidenceThreshold {
                threshold: knobs.threshold.unwrap_or(FAST_DLLM_THRESHOLD),
                block_length: Some(knobs.block_length.unwrap_or(FAST_DLLM_BLOCK_LENGTH)),
            },
        }
    }
}

/// How a token is read off the predicted distribution at each position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decoding {
    /// The most likely token (the paper's default).
    Argmax,
    /// A sample from `softmax(log p / temperature)`; its score is the untempered `log p`.
    Sample { temperature: f64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerConfig {
    /// K: denoising iterations (50 translation/summarisation, 10 TyDiQA and validation,
    /// 1 multiple choice).
    pub steps: usize,
    pub strategy: Strategy,
    pub decoding: Decoding,
    /// Seeds the ChaCha generator used for sampling, Gumbel noise and coin flips.
    pub seed: u64,
    /// Keep the canvas after every step.
    pub record_trajectory: bool,
}

impl Default for SamplerConfig {
    /// 10 steps, reparameterized uncond top-k with the cosine schedule, argmax.
    fn default() -> Self {
        SamplerConfig {
            steps: 10,
            strategy: Strategy::Reparam { update: Update::Uncond, schedule: Schedule::Cosine, topk: TopK::Deterministic },
            decoding: Decoding::Argmax,
            seed: 0,
            record_trajectory: false,
        }
    }
}

impl SamplerConfig {
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(DiffusionError::ZeroSteps);
        }
        if let Decoding::Sample { temperature } = self.decoding
            && !(temperature > 0.0 && temperature.is_finite())
        {
            return Err(DiffusionError::InvalidConfig(format!("temperature must be positive and finite, got {temperature}")));
        }
        match self.strategy {
            Strategy::Reparam { topk: TopK::Stochastic { scale }, .. } if !(scale >= 0.0 && scale.is_finite()) => {
                Err(DiffusionError::InvalidConfig(format!("Gumbel noise scale must be non-negative, got {scale}")))
            }
            Strategy::LowConfidence { block_length: Some(0) } | Strategy::ConfidenceThreshold { block_length: Some(0), .. } => {
                Err(DiffusionError::InvalidConfig("block length must be at least 1".into()))
            }
            Strategy::ConfidenceThreshold { threshold, .. } if !(0.0..=1.0).contains(&threshold) => {
                Err(DiffusionError::InvalidConfig(format!("confidence threshold must be in [0, 1], got {threshold}")))
            }
            _ => Ok(()),
        }
    }
}
