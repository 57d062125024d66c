//! Building a run from its config: the model (pretrained, random or from a checkpoint;
//! causal for the AR baseline; vocabulary-pruned on request, SPEC §6), the tokenizer
//! tokenizer (with the pruning map), the datasets and the objective. Fresh starts and resumes share this code; a
//! resume loads everything from the checkpoint directory instead of `model.dir`.

use crate::ar::load_options_for;
use crate::config::{Init, LossFormKind, ObjectiveKind, Precision, RunConfig, StageKind};
use crate::data::Dataset;
use crate::error::{Result, TrainError};
use crate::objective::{Autoregressive, Diffusion, LengthStage, LladaSft, TrainObjective};
use dlm_data::{SpecialTokens, Tokenizer, VocabMap};
use candle_core::{DType, Device};
use dlm_diffusion::{
    LengthPredictor, LengthPredictorConfig, LossForm, ObjectiveConfig, SftConfig,
    TimestepSampler,
};
use dlm_models::{Backbone, LoadOptions};
use std::path::Path;

pub struct Session {
    pub objective: Box<dyn TrainObjective>,
    /// Speaks the model's ids (a pruned model's, after pruning).
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
    /// The tokenizer files of the source directory (name, bytes), copied into every
    /// checkpoint; read once, as the source may be a checkpoint that is later pruned.
    pub tokenizer_files: Vec<(String, Vec<u8>)>,
    pub train: Dataset,
    pub valid: Option<Dataset>,
}

/// The device `model.device` names (`cpu`, `cuda` or `cuda:N`).
pub fn device(name: &str) -> Result<Device> {
    dlm_models::parse_device(name).map_err(|e| TrainError::Invalid(format!("model.device: {e}")))
}

/// Errors unless `dir` looks like a model directory (config.json and weights).
fn check_model_dir(dir: &Path) -> Result<()> {
    let not = |message: &str| TrainError::NotAModel {
        path: dir.into(),
        message: message.into(),
    };
    if !dir.is_dir() {
        return Err(not("no such directory"));
    }
    if !dir.join("config.json").is_file() {
        return Err(not("config.json is missing"));
    }
    Ok(())
}

fn load_backbone(dir: &Path, opts: &LoadOptions) -> Result<Backbone> {
    Backbone::load(dir, opts).map_err(|e| TrainError::NotAModel {
        path: dir.into(),
        message: e.to_string(),
    })
}

/// `from`: the checkpoint to resume, or `None` for a fresh start from `cfg.model.dir`.
pub fn build(cfg: &RunConfig, from: Option<&Path>) -> Result<Session> {
    let source = from.unwrap_or(&cfg.model.dir);
    check_model_dir(source)?;
    // A checkpoint being resumed holds a copy of the tokenizer; a fresh start may take it
    // from `[model] tokenizer`.
    let external = if from.is_none() { cfg.model.tokenizer.as_deref() } else { None };
    let mut tokenizer = Tokenizer::for_model(source, external)?;
    let mut special = tokenizer.special_tokens()?;
    let tokenizer_files = match external {
        Some(path) => external_tokenizer_files(path)?,
        None => read_tokenizer_files(source)?,
    };
    // SPEC §2: cut from the left to data.max_length and to the model's positions.
    let model_cfg = dlm_models::Config::from_file(&source.join("config.json")).map_err(|e| {
        TrainError::NotAModel {
            path: source.into(),
            message: e.to_string(),
        }
    })?;
    let max_length = cfg.data.max_length.min(model_cfg.max_sequence_length());
    let mut train = Dataset::load_train(&cfg.data, &tokenizer, &special, max_length, cfg.train.seed)?;
    let mut valid = match &cfg.data.valid {
        Some(p) => {
            let mut v = Dataset::load(p, &tokenizer, &special, max_length, 0)?;
            v.truncate(cfg.validate.rows);
            Some(v)
        }
        None => None,
    };
    let dtype = match cfg.model.dtype {
        Precision::F32 => DType::F32,
        Precision::Bf16 => DType::BF16,
    };
    let base = LoadOptions {
        dtype,
        device: device(&cfg.model.device)?,
        trainable: false,
        causal: false,
    };
    let base = load_options_for(source, &base)?;

    if cfg.stage.kind == StageKind::Length {
        // Rows cut so far from the left that no prompt is left cannot train the predictor.
        for d in std::iter::once(&mut train).chain(valid.as_mut()) {
            let before = d.len();
            d.examples.retain(|e| e.seq.n_fixed() > 0);
            if d.examples.is_empty() {
                return Err(TrainError::EmptyDataset {
                    path: d.path.clone(),
                });
            }
            if d.len() < before {
                tracing::warn!(
                    "{}: {} rows without a prompt after truncation are skipped",
                    d.path.display(),
                    before - d.len()
                );
            }
        }
        // The backbone is frozen: always the finetuned model of model.dir, never a copy.
        let model = load_backbone(&cfg.model.dir, &load_options_for(&cfg.model.dir, &base)?)?;
        let predictor = match from {
            Some(ckpt) => LengthPredictor::load(ckpt, &base.device)?,
            None => {
                let c = model.config();
                let pcfg = LengthPredictorConfig {
                    hidden_size: c.hidden_size,
                    num_attention_heads: c.num_attention_heads,
                    intermediate_size: c.intermediate_size,
                    num_classes: c.max_position_embeddings,
                    dropout: 0.1,
                    layer_norm_eps: 1e-5,
                };
                LengthPredictor::new(pcfg, &base.device, cfg.train.seed)?
            }
        };
        let objective = Box::new(LengthStage::new(
            model,
            predictor,
            special,
            cfg.model.dir.clone(),
        ));
        return Ok(Session {
            objective,
            tokenizer,
            special,
            tokenizer_files,
            train,
            valid,
        });
    }

    let ar = cfg.objective.kind == ObjectiveKind::Ar;
    let opts = LoadOptions {
        trainable: true,
        causal: ar || base.causal,
        ..base
    };
    let mut model = match (from, cfg.model.init) {
        (None, Init::Random) => {
            Backbone::init_random(source, &opts, cfg.train.seed).map_err(|e| {
                TrainError::NotAModel {
                    path: source.into(),
                    message: e.to_string(),
                }
            })?
        }
        _ => load_backbone(source, &opts)?,
    };
    if cfg.data.prune_vocab && from.is_none() {
        if tokenizer.vocab_map().is_some() {
            return Err(TrainError::Invalid(format!(
                "{}: the model is already vocabulary-pruned",
                source.display()
            )));
        }
        let map = VocabMap::from_ids(train.ids(), &special);
        tracing::info!(
            "vocabulary pruning: keeping {} of {} ids",
            map.len(),
            model.config().vocab_size
        );
        model = model.prune_vocab(&map.kept)?;
        tokenizer = tokenizer.with_vocab_map(map.clone())?;
        special = tokenizer.special_tokens()?;
        train.remap(&map, special.unk);
        if let Some(v) = valid.as_mut() {
            v.remap(&map, special.unk);
        }
    }
    let objective: Box<dyn TrainObjective> = match cfg.objective.kind {
        ObjectiveKind::Ar => Box::new(Autoregressive {
            model,
            label_smoothing: cfg.objective.label_smoothing,
            special,
            beam: cfg.validate.beam,
            len_penalty: cfg.validate.len_penalty,
        }),
        ObjectiveKind::Diffusion => Box::new(Diffusion {
            model,
            cfg: objective_config(cfg, &special),
            special,
        }),
        ObjectiveKind::LladaSft => Box::new(LladaSft {
            model,
            cfg: SftConfig {
                eps: cfg.objective.mask_eps,
                mask_id: special.mask,
                pad_id: special.pad,
            },
            special,
            eos_padding: cfg.objective.eos_padding,
        }),
    };
    Ok(Session {
        objective,
        tokenizer,
        special,
        tokenizer_files,
        train,
        valid,
    })
}

/// Tokenizer files copied from a model directory into every checkpoint.
fn is_tokenizer_file(name: &str) -> bool {
    matches!(
        name,
        "tokenizer.json"
            | "tokenizer_config.json"
            | "special_tokens_map.json"
            | "vocab.txt"
            | "added_tokens.json"
            | "vocab.json"
            | "merges.txt"
    ) || name.ends_with(".model")
}

/// The files of a tokenizer kept outside the model folder: a folder's tokenizer files, or a
/// file (under the name a model folder gives it: tokenizer.json, vocab.txt, or its own
/// `*.model` name) with the side files beside it.
fn external_tokenizer_files(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    if path.is_dir() {
        return read_tokenizer_files(path);
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let canonical = if name.ends_with(".json") {
        "tokenizer.json"
    } else if name.ends_with(".txt") {
        "vocab.txt"
    } else {
        name
    };
    let mut files: Vec<(String, Vec<u8>)> = read_tokenizer_files(parent)?
        .into_iter()
        .filter(|(n, _)| matches!(n.as_str(), "tokenizer_config.json" | "special_tokens_map.json" | "added_tokens.json"))
        .collect();
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    files.push((canonical.to_owned(), bytes));
    Ok(files)
}

pub(crate) fn read_tokenizer_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))? {
        let e = e.map_err(|e| TrainError::io(dir, e))?;
        let Some(name) = e.file_name().to_str().map(String::from) else {
            continue;
        };
        if is_tokenizer_file(&name) && e.path().is_file() {
            let bytes = std::fs::read(e.path()).map_err(|err| TrainError::io(e.path(), err))?;
            out.push((name, bytes));
        }
    }
    Ok(out)
}

/// `[objective]` as dlm-diffusion's config.
pub fn objective_config(cfg: &RunConfig, special: &dlm_data::SpecialTokens) -> ObjectiveConfig {
    let o = &cfg.objective;
    ObjectiveConfig {
        timesteps: o.timesteps,
        sampler: match o.mask_ratio {
            Some(ratio) => TimestepSampler::Fixed { ratio },
            None => TimestepSampler::Uniform,
        },
        form: match o.form {
            LossFormKind::Dlm => LossForm::Dlm {
                weighting: o.weighting,
            },
            LossFormKind::Rdm => LossForm::Rdm {
                weighting: o.rdm_weighting,
            },
        },
        label_smoothing: o.label_smoothing,
        mask_id: special.mask,
        pad_id: special.pad,
    }
}
