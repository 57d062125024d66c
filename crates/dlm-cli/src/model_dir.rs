//! Opening a model directory as the CLI uses it: the backbone, its tokenizer and the
//! special tokens, checked against each other (the tokenizer must fit the vocabulary).

use anyhow::Context;
use crate::hub;
use candle_core::DType;
use dlm_data::{SpecialTokens, Tokenizer};
use dlm_models::{Backbone, LoadOptions};
use std::path::PathBuf;

/// `--dtype` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl From<Precision> for DType {
    fn from(p: Precision) -> DType {
        match p {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

/// Options shared by every subcommand that loads a model.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Model directory in HuggingFace layout (config.json, weights, tokenizer files), or a
    /// hub id `org/name` (downloaded when the network allows)
    #[arg(long)]
    pub model: PathBuf,
    /// Compute precision
    #[arg(long, value_enum, default_value_t)]
    pub dtype: Precision,
    /// Where to compute: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`)
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub struct LoadedModel {
    pub model: Backbone,
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
}

impl ModelArgs {
    /// The local model directory: `--model` itself, or its hub snapshot for an `org/name`.
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        if hub::is_hub_id(&self.model) {
            return hub::download(&self.model.to_string_lossy());
        }
        if !self.model.is_dir() {
            anyhow::bail!("{}: not a model directory", self.model.display());
        }
        Ok(self.model.clone())
    }

    pub fn load(&self) -> anyhow::Result<LoadedModel> {
        let dir = self.dir()?;
        let device = dlm_models::parse_device(&self.device)?;
        let opts = LoadOptions { dtype: self.dtype.into(), device, ..LoadOptions::default() };
        let model = Backbone::load(&dir, &opts)?;
        let tokenizer = Tokenizer::from_dir(&dir).with_context(|| format!("loading the tokenizer of {}", dir.display()))?;
        tokenizer.check_fits(model.config().vocab_size)?;
        let special = tokenizer.special_tokens()?;
        Ok(LoadedModel { model, tokenizer, special })
    }
}
