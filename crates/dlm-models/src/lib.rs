//! Masked language models (BERT, RoBERTa, XLM-R, ModernBERT) and the diffusion LMs LLaDA
//! and Dream on candle, loaded from
//! HuggingFace checkpoints and computing what `transformers` computes; the [`MaskedLm`]
//! trait that diffusion, sampling and evaluation are written against.

pub mod allocator;
mod backbone;
mod config;
mod dense;
mod device;
mod dream;
mod dropout;
mod elementwise;
mod encoder;
mod error;
mod fill_mask;
mod head;
mod kv_cache;
mod llada;
mod llama;
pub mod kernels;
mod masked_lm;
mod modernbert;
mod names;
mod network;
mod params;
mod rotary;
mod weights;

pub use backbone::{Backbone, LoadOptions, ParamCounts};
pub use config::{Activation, Config, Family};
pub use device::{device_from_env, parse_device};
pub use fill_mask::{Prediction, fill_mask};
pub use error::{ModelError, Result};
pub use kernels::{AdamWStep, adamw_step, cross_entropy};
pub use kv_cache::{CachedRow, KvCache};
pub use masked_lm::{Argmax, MaskedLm, composed_project_argmax, padded_encode_rows, serial_encode_cached_rows};
pub use params::Params;
pub use weights::read_torch_state_dict;
