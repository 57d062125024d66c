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
    /// LLaDA's `generate()` (ML-GSAI/LLaDA `generate.py`): within semi-autoregressive blocks
    /// of `block_length` generation positions (`None`: one block), transfer an even share of
    /// the block per step (`get_num_transfer_tokens`, fixed at the block's start) to the
    /// highest-ranked masked positions up to the block's end; decoded tokens are never
    /// re-masked. Predictions range over the whole vocabulary, `<mask>` included: a position
    /// whose prediction is `<mask>` stays masked (and competes again at the next step).
    /// `steps` must be a multiple of the number of blocks.
    LowConfidence { block_length: Option<usize>, remasking: Remasking },
    /// Fast-dLLM parallel decoding (NVlabs/Fast-dLLM `llada/generate.py`): in the current
    /// block, each step transfers the most confident masked position and the others the
    /// [`Parallel`] rule admits, until the block has no mask; the number of steps is
    /// adaptive and `steps` is unused. Predictions range over the whole vocabulary,
    /// `<mask>` included, as for [`Strategy::LowConfidence`]. A step that decodes nothing
    /// (every transfer predicted `<mask>`, which the reference would repeat forever at
    /// temperature 0) moves on to the next block, so a run takes at most N + blocks steps.
    ConfidenceThreshold { rule: Parallel, block_length: Option<usize> },
    /// Dream's `diffusion_generate` (`_sample` of Dream's `generation_utils.py`, as vendored
    /// by NVlabs/Fast-dLLM `dream/model/generation_utils.py`): `steps` steps over
    /// `timesteps = linspace(1, 1e-3, steps + 1)`; at each step `int(masked · (1 − s/t))`
    /// masked positions (all of them at the last step) are transferred, chosen by `alg`.
    /// Tokens and confidences come from `sample_tokens` (`top_p`, `top_k`, the decoding's
    /// temperature), over the whole vocabulary.
    Dream { alg: DreamAlg, alg_temp: Option<f64>, top_p: Option<f64>, top_k: Option<usize> },
}

impl Strategy {
    /// The `--strategy` name this strategy is built from ([`StrategyName::build`] gives
    /// back a strategy of that name).
    pub fn name(&self) -> StrategyName {
        match self {
            Strategy::Reparam { topk: TopK::Stochastic { .. }, .. } => StrategyName::Stochastic,
            Strategy::Reparam { update: Update::Uncond, .. } => StrategyName::ReparamUncond,
            Strategy::Reparam { update: Update::Cond, .. } => StrategyName::ReparamCond,
            Strategy::Cmlm => StrategyName::Cmlm,
            Strategy::Ar => StrategyName::Ar,
            Strategy::LowConfidence { .. } => StrategyName::Llada,
            Strategy::ConfidenceThreshold { .. } => StrategyName::FastDllm,
            Strategy::Dream { .. } => StrategyName::Dream,
        }
    }
}

/// How LLaDA ranks the masked positions (`remasking` of LLaDA's `generate()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Remasking {
    /// By the probability of the predicted token (`low_confidence`).
    #[default]
    LowConfidence,
    /// By a uniform draw per position (`random`), from the row's seeded generator.
    Random,
}

impl Remasking {
    pub const ALL: [Remasking; 2] = [Remasking::LowConfidence, Remasking::Random];

    pub fn as_str(self) -> &'static str {
        match self {
            Remasking::LowConfidence => "low-confidence",
            Remasking::Random => "random",
        }
    }

    /// The name, with `-` or the reference's `_` (`low_confidence`).
    pub fn parse(name: &str) -> Option<Remasking> {
        Remasking::ALL.into_iter().find(|r| r.as_str() == name.replace('_', "-"))
    }
}

/// Which masked positions of the current block a Fast-dLLM step transfers, besides the
/// most confident one (always transferred). Confidences are probabilities of the predicted
/// tokens, compared in f64 as the reference does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parallel {
    /// Every other position whose confidence is at least the threshold (`get_transfer_index`
    /// with `threshold`: a position is dropped when `confidence < threshold`).
    Threshold(f64),
    /// Factor-based parallel decoding (`get_transfer_index_dynamic`, NVlabs/Fast-dLLM
    /// `llada/generate.py` at f6b35ec3f1b16e1b3d3357938046559ae2d350fa): with the
    /// confidences sorted descending `c_0 ≥ c_1 ≥ …` (M of them), the n most confident,
    /// where n is the first i ≥ 1 with `c_i < 1 − factor / (i + 2)` (the paper's rule: the
    /// largest n whose n-th confidence has `(n + 1)(1 − c) < factor`; the reference keeps
    /// equality), or all M when there is none — and, as the reference's loop does, also
    /// all M when that first i is `M − 1`.
    Factor(f64),
}

/// Dream's `alg`: how the positions transferred at a step are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DreamAlg {
    /// Each masked position is transferred with probability `1 − s/t` (all at the last
    /// step), from the row's seeded generator.
    Origin,
    /// Confidence: the probability of the predicted token.
    MaskgitPlus,
    /// Confidence: the top-1 minus the top-2 probability.
    TopkMargin,
    /// Confidence: the negative entropy `Σ p log(p + 1e-10)`.
    Entropy,
}

impl DreamAlg {
    pub const ALL: [DreamAlg; 4] = [DreamAlg::Origin, DreamAlg::MaskgitPlus, DreamAlg::TopkMargin, DreamAlg::Entropy];

    pub fn as_str(self) -> &'static str {
        match self {
            DreamAlg::Origin => "origin",
            DreamAlg::MaskgitPlus => "maskgit-plus",
            DreamAlg::TopkMargin => "topk-margin",
            DreamAlg::Entropy => "entropy",
        }
    }

    /// The name, with `-` or Dream's `_` (`maskgit_plus`).
    pub fn parse(name: &str) -> Option<DreamAlg> {
        DreamAlg::ALL.into_iter().find(|a| a.as_str() == name.replace('_', "-"))
    }
}

/// Fast-dLLM's confidence threshold and block length (its paper and evaluation scripts).
/// Dream's `diffusion_generate` filters to the 50 most likely tokens unless told otherwise:
/// its generation config copies transformers' global default `top_k = 50` from the model
/// config (transformers 4.49), so that is what the reference computes by default. A top-k
/// at least the vocabulary size filters nothing.
pub const DREAM_TOP_K: usize = 50;
pub const FAST_DLLM_THRESHOLD: f64 = 0.9;
pub const FAST_DLLM_BLOCK_LENGTH: usize = 32;
/// Dream's `alg` when none is given: its README's example (and Fast-dLLM's Dream evaluation)
/// uses `entropy` (the generation config's own default is `origin`).
pub const DREAM_ALG: DreamAlg = DreamAlg::Entropy;
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
    Dream,
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
    /// llada: how masked positions are ranked.
    pub remasking: Option<Remasking>,
    /// fast-dllm: factor-based parallel decoding instead of the threshold.
    pub factor: Option<f64>,
    /// dream: how the transferred positions are chosen.
    pub alg: Option<DreamAlg>,
    /// dream: sample the transferred positions from `softmax(confidence / alg_temp)`
    /// (0 or none: the most confident).
    pub alg_temp: Option<f64>,
    /// dream: nucleus filtering of the distribution before reading tokens and confidences.
    pub top_p: Option<f64>,
    /// dream: top-k filtering of the distribution before reading tokens and confidences.
    pub top_k: Option<usize>,
}

impl StrategyName {
    pub const ALL: [StrategyName; 8] = [
        StrategyName::ReparamUncond,
        StrategyName::ReparamCond,
        StrategyName::Stochastic,
        StrategyName::Cmlm,
        StrategyName::Ar,
        StrategyName::Llada,
        StrategyName::FastDllm,
        StrategyName::Dream,
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
            StrategyName::Dream => "dream",
        }
    }

    pub fn parse(name: &str) -> Option<StrategyName> {
        StrategyName::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The knob names (as `--flag` names without dashes: `block-length`, `threshold`,
    /// `noise-scale`, `remasking`, `factor`, `alg`, `alg-temp`, `top-p`, `top-k`) that are
    /// given but that this strategy does not use.
    pub fn unused_knobs(self, knobs: &StrategyKnobs) -> Vec<&'static str> {
        use StrategyName::{Dream, FastDllm, Llada, Stochastic};
        [
            ("block-length", knobs.block_length.is_some(), matches!(self, Llada | FastDllm)),
            ("threshold", knobs.threshold.is_some(), self == FastDllm),
            ("noise-scale", knobs.noise_scale.is_some(), self == Stochastic),
            ("remasking", knobs.remasking.is_some(), self == Llada),
            ("factor", knobs.factor.is_some(), self == FastDllm),
            ("alg", knobs.alg.is_some(), self == Dream),
            ("alg-temp", knobs.alg_temp.is_some(), self == Dream),
            ("top-p", knobs.top_p.is_some(), self == Dream),
            ("top-k", knobs.top_k.is_some(), self == Dream),
        ]
        .into_iter()
        .filter(|&(_, given, applies)| given && !applies)
        .map(|(name, _, _)| name)
        .collect()
    }

    /// Two knobs given together that exclude each other (fast-dllm: `threshold` and
    /// `factor` are alternative rules), by their flag names.
    pub fn conflicting_knobs(self, knobs: &StrategyKnobs) -> Option<(&'static str, &'static str)> {
        (self == StrategyName::FastDllm && knobs.threshold.is_some() && knobs.factor.is_some()).then_some(("threshold", "factor"))
    }

    /// The strategy, with the defaults of the released code and papers for knobs not given
    /// (llada: one block, low-confidence remasking; fast-dllm: threshold 0.9 unless a
    /// factor is given, blocks of 32; stochastic: scale 1.0; dream: `entropy`, no
    /// `alg_temp`, no top-p/top-k filtering). A factor takes precedence over a threshold
    /// ([`StrategyName::conflicting_knobs`] tells callers to refuse both).
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
            StrategyName::Llada => {
                Strategy::LowConfidence { block_length: knobs.block_length, remasking: knobs.remasking.unwrap_or_default() }
            }
            StrategyName::FastDllm => Strategy::ConfidenceThreshold {
                rule: match knobs.factor {
                    Some(factor) => Parallel::Factor(factor),
                    None => Parallel::Threshold(knobs.threshold.unwrap_or(FAST_DLLM_THRESHOLD)),
                },
                block_length: Some(knobs.block_length.unwrap_or(FAST_DLLM_BLOCK_LENGTH)),
            },
            StrategyName::Dream => Strategy::Dream {
                alg: knobs.alg.unwrap_or(DREAM_ALG),
                alg_temp: knobs.alg_temp,
                top_p: knobs.top_p,
                top_k: Some(knobs.top_k.unwrap_or(DREAM_TOP_K)),
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
    /// Keys and values reused between steps: Fast-dLLM's prefix or dual cache (the
    /// semi-autoregressive strategies) or dKV-Cache's refreshed cache (`refresh:R`, every
    /// strategy); `none`: a full forward every step.
    #[serde(default)]
    pub cache: super::Cache,
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
            cache: super::Cache::None,
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
        self.cache.check(&self.strategy)?;
        match self.strategy {
            Strategy::Reparam { topk: TopK::Stochastic { scale }, .. } if !(scale >= 0.0 && scale.is_finite()) => {
                Err(DiffusionError::InvalidConfig(format!("Gumbel noise scale must be non-negative, got {scale}")))
            }
            Strategy::LowConfidence { block_length: Some(0), .. } | Strategy::ConfidenceThreshold { block_length: Some(0), .. } => {
                Err(DiffusionError::InvalidConfig("block length must be at least 1".into()))
            }
            Strategy::ConfidenceThreshold { rule: Parallel::Threshold(threshold), .. } if !(0.0..=1.0).contains(&threshold) => {
                Err(DiffusionError::InvalidConfig(format!("confidence threshold must be in [0, 1], got {threshold}")))
            }
            Strategy::ConfidenceThreshold { rule: Parallel::Factor(factor), .. } if !(factor > 0.0 && factor.is_finite()) => {
                Err(DiffusionError::InvalidConfig(format!("parallel decoding factor must be positive and finite, got {factor}")))
            }
            Strategy::Dream { alg_temp: Some(t), .. } if !(t >= 0.0 && t.is_finite()) => {
                Err(DiffusionError::InvalidConfig(format!("Dream alg-temp must be non-negative and finite, got {t}")))
            }
            Strategy::Dream { top_p: Some(p), .. } if !(p > 0.0 && p <= 1.0) => {
                Err(DiffusionError::InvalidConfig(format!("Dream top-p must be in (0, 1], got {p}")))
            }
            Strategy::Dream { top_k: Some(0), .. } => Err(DiffusionError::InvalidConfig("Dream top-k must be at least 1".into())),
            _ => Ok(()),
        }
    }

    /// Whether the run stops after `steps` steps (every strategy but Fast-dLLM's, whose
    /// number of steps is adaptive).
    pub(crate) fn bounded(&self) -> bool {
        !matches!(self.strategy, Strategy::ConfidenceThreshold { .. })
    }
}
