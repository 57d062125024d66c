//! Diffusion language models on pretrained masked LMs (arXiv 2308.12219, SPEC §2-5):
//! coupled absorbing-diffusion corruption and the reparameterized training objective (and
//! LLaDA's SFT objective, `sft`),
//! iterative-unmasking samplers with their schedules and trajectories (as text, as step
//! events, as an SVG picture), length prediction with length beams, and per-token scoring
//! of a sequence by the Monte-Carlo diffusion ELBO (`elbo`). Everything is written against
//! [`dlm_models::MaskedLm`].

mod batch;
mod canvas;
mod corruption;
mod elbo;
mod error;
mod length;
mod objective;
mod sampler;
mod schedule;
mod sft;
#[cfg(test)]
mod testing;
mod trajectory;
mod trajectory_svg;

pub use batch::TokenBatch;
pub use canvas::{Canvas, SpecialIds};
pub use corruption::{Corruption, TimestepSampler, sample_coupled};
pub use elbo::{ElboRun, ElboTerms, elbo_terms};
pub use error::{DiffusionError, Result};
pub use length::{
    BeamChoice, LENGTH_PREDICTOR_CONFIG, LENGTH_PREDICTOR_WEIGHTS, LengthMetrics, LengthPredictor, LengthPredictorConfig,
    generate_with_length_beam, length_class,
};
pub use objective::{LossForm, ObjectiveConfig, ObjectiveMetrics, ObjectiveOutput, RdmWeighting, Weighting, objective, objective_with};
pub use sampler::{
    Advanced, Cache, Decoding, Denoised, DreamAlg, Parallel, Remasking, RowId, SamplerConfig, StepBatch, StepEvent, StepReport, Strategy,
    StrategyKnobs, StrategyName, TopK, Update, denoise, denoise_with,
};
pub use sampler::TokenLogprob;
pub use schedule::{Schedule, transfer_counts};
pub use sft::{LLADA_MASK_EPS, SftConfig, SftMasks, SftMetrics, SftOutput, sample_sft_masks, sft_objective, sft_objective_with};
pub use trajectory::{Trajectory, render_canvas};
pub use trajectory_svg::trajectory_svg;
