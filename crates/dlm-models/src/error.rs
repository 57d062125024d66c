//! Errors of model loading and computation. Every message names the file and, where one is
//! involved, the tensor, with what was expected and what was found.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid config.json: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: model_type {found:?} is not supported (expected one of: bert, roberta, camembert, xlm-roberta, modernbert, llada, Dream)")]
    UnknownModelType { path: PathBuf, found: String },
    #[error("{dir}: no weights found (expected model.safetensors, model.safetensors.index.json or pytorch_model.bin)")]
    NoWeights { dir: PathBuf },
    #[error("{path}: corrupt or truncated weights file: {message}")]
    CorruptWeights { path: PathBuf, message: String },
    #[error("{path}: tensor {name:?} not found (tried: {tried})")]
    MissingTensor { path: PathBuf, name: String, tried: String },
    #[error("{path}: tensor {name:?} has shape {found:?}, expected {expected:?}")]
    Shape { path: PathBuf, name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("the input contains no mask token (id {mask_id}); put at least one mask where a prediction is wanted")]
    NoMask { mask_id: u32 },
    #[error("input has {found} positions but the model allows at most {max}")]
    TooLong { found: usize, max: usize },
    #[error("device {spec:?}: {message}")]
    Device { spec: String, message: String },
    /// A capability the model does not have (e.g. a cached forward), with what was asked.
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, ModelError>;
