//! Opening a model directory as the CLI uses it: the backbone, its tokenizer (the folder's
//! own, or `--tokenizer` for a folder that keeps it elsewhere) and the special tokens,
//! checked against each other (the tokenizer must fit the vocabulary). Commands given
//! token ids need no tokenizer: [`ModelArgs::load_for_ids`].

use anyhow::Context;
use crate::hub;
use candle_core::DType;
use dlm_data::{ChatTemplate, DataError, SpecialTokens, Tokenizer};
use dlm_diffusion::SpecialIds;
use dlm_models::{Backbone, LoadOptions};
use std::path::{Path, PathBuf};

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
    /// The tokenizer, when the model folder does not hold it: a tokenizer.json, vocab.txt or
    /// SentencePiece *.model file, or a folder holding one (e.g. AntiBERTy's wheel keeps
    /// vocab.txt one folder up). The model folder's vocab_map.json still applies
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,
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
        let model = self.backbone(&dir)?;
        let tokenizer = self.tokenizer(&dir)?;
        tokenizer.check_fits(model.config().vocab_size)?;
        let special = tokenizer.special_tokens()?;
        Ok(LoadedModel { model, tokenizer, special })
    }

    /// The model and, when there is one, its tokenizer: for commands given token ids, which
    /// need no tokenizer (a folder without one is fine).
    pub fn load_for_ids(&self) -> anyhow::Result<(Backbone, Option<LoadedTokenizer>)> {
        let dir = self.dir()?;
        let model = self.backbone(&dir)?;
        let tokenizer = match self.tokenizer(&dir) {
            Ok(t) => t,
            Err(e) if self.tokenizer.is_none() && matches!(e.downcast_ref::<DataError>(), Some(DataError::NoTokenizer { .. })) => {
                return Ok((model, None));
            }
            Err(e) => return Err(e),
        };
        tokenizer.check_fits(model.config().vocab_size)?;
        let special = tokenizer.special_tokens()?;
        Ok((model, Some(LoadedTokenizer { tokenizer, special })))
    }

    fn backbone(&self, dir: &Path) -> anyhow::Result<Backbone> {
        let device = dlm_models::parse_device(&self.device)?;
        let opts = LoadOptions { dtype: self.dtype.into(), device, ..LoadOptions::default() };
        Ok(Backbone::load(dir, &opts)?)
    }

    /// The tokenizer of the model in `dir`: `--tokenizer` (with `dir`'s vocabulary map, if
    /// any) or the folder's own.
    pub fn tokenizer(&self, dir: &Path) -> anyhow::Result<Tokenizer> {
        Tokenizer::for_model(dir, self.tokenizer.as_deref()).map_err(|e| match (e, &self.tokenizer) {
            (e @ DataError::NoTokenizer { .. }, None) => anyhow::Error::new(e),
            (e, Some(path)) => anyhow::Error::new(e).context(format!("loading the tokenizer {}", path.display())),
            (e, None) => anyhow::Error::new(e).context(format!("loading the tokenizer of {}", dir.display())),
        })
    }
}

/// A tokenizer and the special tokens it names.
pub struct LoadedTokenizer {
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
}

/// The mask id of a model used without a tokenizer: `--mask-id`, else config.json's
/// `mask_token_id`.
pub fn mask_id_without_tokenizer(model: &Backbone, given: Option<u32>) -> anyhow::Result<u32> {
    given.or_else(|| config_id(model, "mask_token_id")).with_context(|| {
        format!(
            "{}: no tokenizer and no mask_token_id in config.json, so the mask id is unknown; give --mask-id N or --tokenizer PATH",
            model.dir().display()
        )
    })
}

/// The special ids of a model used without a tokenizer: config.json's `bos_token_id`,
/// `eos_token_id`, `pad_token_id`, and the mask id of [`mask_id_without_tokenizer`].
pub fn special_ids_without_tokenizer(model: &Backbone, mask: Option<u32>) -> anyhow::Result<SpecialIds> {
    let need = |key: &str| {
        config_id(model, key).with_context(|| {
            format!("{}: no tokenizer and no {key} in config.json; give --tokenizer PATH", model.dir().display())
        })
    };
    Ok(SpecialIds {
        bos: need("bos_token_id")?,
        eos: need("eos_token_id")?,
        pad: need("pad_token_id")?,
        mask: mask_id_without_tokenizer(model, mask)?,
    })
}

fn config_id(model: &Backbone, key: &str) -> Option<u32> {
    model.config().special_id(key)
}

/// The chat template of a model (`--chat`): from the tokenizer's folder, else the model's
/// (`tokenizer_config.json`'s `chat_template` or `chat_template.jinja`).
pub fn chat_template(tokenizer: &Tokenizer, model_dir: &Path) -> anyhow::Result<ChatTemplate> {
    let mut dirs = vec![tokenizer.dir()];
    if tokenizer.dir() != model_dir {
        dirs.push(model_dir);
    }
    for dir in &dirs {
        if let Some(template) = ChatTemplate::from_model_dir(dir)? {
            return Ok(template);
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    anyhow::bail!(
        "--chat: no chat template in {} (looked for chat_template in tokenizer_config.json and for \
         chat_template.jinja); leave --chat out and write the prompt as the model expects it",
        looked.join(" or ")
    )
}
