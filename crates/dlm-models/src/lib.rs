//! BERT-family masked language models (BERT, RoBERTa, XLM-R) on candle, loaded from
//! HuggingFace checkpoints and computing what `transformers` computes; the [`MaskedLm`]
//! trait that diffusion, sampling and evaluation are written against.

pub mod allocator;
mod backbone;
mod config;
mod dense;
mod dropout;
mod elementwise;
mod encoder;
mod error;
mod fill_mask;
mod head;
mod kernels;
mod masked_lm;
mod names;
mod params;
mod weights;

pub use backbone::{Backbone, LoadOptions, ParamCounts};
pub use config::{Activation, Config, Family};
pub use fill_mask::{Prediction, fill_mask};
pub use error::{ModelError, Result};
pub use kernels::{AdamWStep, adamw_step, cross_entropy};
pub use masked_lm::MaskedLm;
pub use params::Params;
pub use weights::read_torch_state_dict;
