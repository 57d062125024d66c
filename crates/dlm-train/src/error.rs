//! Errors of training: every message names the file, key or step it is about, so that the
//! one line the binary prints is enough to act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("--set {assignment}: {message}")]
    Override { assignment: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write checkpoint {path}: {source} (the previous checkpoint is left intact)")]
    CheckpointWrite {
        path: PathBuf,
        #[source]
        source: Box<TrainError>,
    },
    #[error("{path}: invalid checkpoint: {message}")]
    BadCheckpoint { path: PathBuf, message: String },
    #[error("{dir}: no valid checkpoint to resume from{detail}")]
    NoCheckpoint { dir: PathBuf, detail: String },
    #[error("{path}: no training examples (the file has no rows, or every row was dropped)")]
    EmptyDataset { path: PathBuf },
    #[error("{path}: not a masked language model directory: {message}")]
    NotAModel { path: PathBuf, message: String },
    #[error("non-finite loss ({loss}) at step {step}")]
    NonFinite { step: u64, loss: f64 },
    #[error("{0}")]
    Invalid(String),
    #[error("distributed training: {0}")]
    Collective(String),
    #[error(transparent)]
    Data(#[from] dlm_data::DataError),
    #[error(transparent)]
    Model(#[from] dlm_models::ModelError),
    #[error(transparent)]
    Diffusion(#[from] dlm_diffusion::DiffusionError),
    #[error(transparent)]
    Metric(#[from] dlm_metrics::MetricError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Safetensors(#[from] safetensors::SafeTensorError),
    #[error("plot: {0}")]
    Plot(String),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, TrainError>;
