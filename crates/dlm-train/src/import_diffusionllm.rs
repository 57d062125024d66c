//! Importing the checkpoints the paper's authors released (DiffusionLLM,
//! `scripts/download_ckpts.sh`: `flan_v2.*.length` and the task-finetuned models) into an
//! ordinary dlm model directory that `generate`, `eval` and `serve` use as they are.
//!
//! Their state dict is that of `DiscreteDiffusionXLMRModel` (src/model/dd_model.py):
//! - `model.roberta.*`, `model.lm_head.*`: an HF `XLMRobertaForMaskedLM`. A tied decoder may
//!   be saved as an empty tensor (their `load_ckpt` ties it back to the word embeddings);
//!   the decoder's own bias `model.lm_head.decoder.bias` is the one their forward pass uses
//!   (after pruning, `model.lm_head.bias` is a stale full-size copy);
//! - `length_trm.layers.0.*`, `length_predictor.{0,2}.*`: the length predictor, whose names
//!   dlm's [`LengthPredictor`] already uses.
//!
//! It is read from `pytorch_model.bin` or from a DeepSpeed ZeRO-2 folder
//! (`[global_stepN/]mp_rank_00_model_states.pt`, the state dict under key `module`; the
//! step named by a `latest` file, else the highest N). Task checkpoints were
//! vocabulary-pruned with a fairseq `dict.txt` ([`FairseqDictionary`]); the directory then
//! gets the matching `vocab_map.json`, in the dictionary's order, so the model's ids are
//! the authors' ids. `config.json` and the tokenizer come from the base model the
//! checkpoint was trained from (`--pretrained` in their scripts).
//!
//! Output: `config.json` (the base's, with the checkpoint's vocabulary size and tying),
//! `model.safetensors` (f32, HF names), the base's tokenizer files, `vocab_map.json` when
//! pruned, `length_predictor.{json,safetensors}` when the checkpoint has one.

use crate::error::{Result, TrainError};
use crate::session::read_tokenizer_files;
use candle_core::{DType, Tensor};
use dlm_data::{FairseqDictionary, Tokenizer};
use dlm_diffusion::{LengthPredictor, LengthPredictorConfig};
use dlm_models::{Backbone, Config, LoadOptions, read_torch_state_dict};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file DeepSpeed writes the module's weights into (one model-parallel rank).
const ZERO_MODEL_STATES: &str = "mp_rank_00_model_states.pt";
/// `torch.nn.LayerNorm`'s default epsilon, used by `nn.TransformerEncoderLayer`.
const TORCH_LAYER_NORM_EPS: f64 = 1e-5;
/// `nn.TransformerEncoderLayer`'s default dropout.
const TORCH_ENCODER_DROPOUT: f64 = 0.1;

/// What to import and where to.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// `pytorch_model.bin`, `mp_rank_00_model_states.pt`, or a folder holding either (or
    /// DeepSpeed's `global_step*` folders).
    pub checkpoint: PathBuf,
    /// The base model directory: `config.json` and tokenizer files.
    pub base: PathBuf,
    /// The new model directory (must not exist or be empty).
    pub out: PathBuf,
    /// The fairseq `dict.txt` a task checkpoint was pruned with.
    pub dict: Option<PathBuf>,
}

/// What an import found and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// The file the state dict was read from.
    pub weights_file: PathBuf,
    pub vocab_size: usize,
    pub tied: bool,
    pub pruned: bool,
    pub length_predictor: bool,
    /// State-dict entries that are neither backbone nor length predictor (not imported).
    pub ignored: Vec<String>,
}

/// Imports a DiffusionLLM checkpoint; see the module documentation.
pub fn import_diffusionllm(req: &ImportRequest) -> Result<ImportSummary> {
    check_out_dir(&req.out)?;
    let (file, key) = locate_state_dict(&req.checkpoint)?;
    tracing::info!(
        "reading {}{}",
        file.display(),
        key.map(|k| format!(" (key {k:?})")).unwrap_or_default()
    );
    let state = read_torch_state_dict(&file, key)?;
    let parts = split_state_dict(state, &file)?;

    let base_config = req.base.join("config.json");
    let mut config = Config::from_file(&base_config)?;
    let word = parts
        .backbone
        .get(WORD_EMBEDDINGS)
        .ok_or_else(|| bad(&file, format!("no model.{WORD_EMBEDDINGS}")))?;
    let rows = word.dim(0)?;
    let tokenizer = Tokenizer::from_dir(&req.base)?;
    let map = match &req.dict {
        Some(path) => {
            let dict = FairseqDictionary::load(path)?;
            if dict.len() != rows {
                return Err(bad(
                    path,
                    format!(
                        "the dictionary has {} ids (fairseq's 4 specials + one per line) but the checkpoint's word embeddings have {rows} rows",
                        dict.len()
                    ),
                ));
            }
            Some(dict.vocab_map(&tokenizer, &tokenizer.special_tokens()?)?)
        }
        None if rows != config.vocab_size => {
            return Err(bad(
                &file,
                format!(
                    "the word embeddings have {rows} rows but {} says vocab_size {}: a vocabulary-pruned task checkpoint; give --dict with the fairseq dict.txt it was trained with",
                    base_config.display(),
                    config.vocab_size
                ),
            ));
        }
        None => None,
    };
    let (backbone, tied) = normalise_head(parts.backbone)?;
    config.vocab_size = rows;
    config.tie_word_embeddings = tied;
    let model = Backbone::from_tensors(&file, config, backbone, &LoadOptions::default())?;
    model.save(&req.out)?;

    let length_predictor = !parts.length.is_empty();
    if length_predictor {
        let cfg = length_config(model.config(), &parts.length, &file)?;
        LengthPredictor::from_tensors(cfg, &parts.length, &file)?.save(&req.out)?;
    } else {
        tracing::warn!(
            "{}: no length predictor (length_trm.*); generate will need --length",
            file.display()
        );
    }
    for (name, bytes) in read_tokenizer_files(&req.base)? {
        let path = req.out.join(name);
        std::fs::write(&path, bytes).map_err(|e| TrainError::io(&path, e))?;
    }
    if let Some(map) = &map {
        map.save(&req.out)?;
    }
    // The directory must open as any other: tokenizer (with its map), special tokens, fit.
    let check = Tokenizer::from_dir(&req.out)?;
    check.special_tokens()?;
    check.check_fits(rows)?;
    Ok(ImportSummary {
        weights_file: file,
        vocab_size: rows,
        tied,
        pruned: map.is_some(),
        length_predictor,
        ignored: parts.ignored,
    })
}

fn bad(path: &Path, message: String) -> TrainError {
    TrainError::BadCheckpoint {
        path: path.into(),
        message,
    }
}

fn check_out_dir(out: &Path) -> Result<()> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|e| TrainError::io(out, e))?;
        if entries.next().is_some() {
            return Err(TrainError::Invalid(format!(
                "{}: exists and is not empty; choose a new --out",
                out.display()
            )));
        }
    }
    Ok(())
}

/// The state-dict file of a checkpoint path, and the key its state dict sits under.
pub fn locate_state_dict(path: &Path) -> Result<(PathBuf, Option<&'static str>)> {
    let zero = |p: PathBuf| -> Result<(PathBuf, Option<&'static str>)> {
        if p.is_file() {
            Ok((p, Some("module")))
        } else {
            Err(bad(
                &p,
                "the DeepSpeed model states file does not exist".into(),
            ))
        }
    };
    if path.is_file() {
        let is_zero = path.file_name().is_some_and(|n| n == ZERO_MODEL_STATES);
        return Ok((path.into(), is_zero.then_some("module")));
    }
    if !path.is_dir() {
        return Err(bad(path, "no such file or directory".into()));
    }
    let bin = path.join("pytorch_model.bin");
    if bin.is_file() {
        return Ok((bin, None));
    }
    if path.join("adapter_model.bin").is_file() {
        return Err(bad(
            path,
            "a LoRA adapter checkpoint; merge it into the model first (not supported)".into(),
        ));
    }
    if path.join(ZERO_MODEL_STATES).is_file() {
        return zero(path.join(ZERO_MODEL_STATES));
    }
    let latest = path.join("latest");
    if latest.is_file() {
        let tag = std::fs::read_to_string(&latest).map_err(|e| TrainError::io(&latest, e))?;
        return zero(path.join(tag.trim()).join(ZERO_MODEL_STATES));
    }
    let mut steps: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| TrainError::io(path, e))? {
        let p = entry.map_err(|e| TrainError::io(path, e))?.path();
        let step = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("global_step"))
            .and_then(|s| s.parse().ok());
        if let Some(step) = step
            && p.is_dir()
        {
            steps.push((step, p));
        }
    }
    match steps.into_iter().max() {
        Some((_, dir)) => zero(dir.join(ZERO_MODEL_STATES)),
        None => Err(bad(
            path,
            format!(
                "no pytorch_model.bin, {ZERO_MODEL_STATES}, `latest` file or global_step* folder"
            ),
        )),
    }
}

const WORD_EMBEDDINGS: &str = "roberta.embeddings.word_embeddings.weight";
const DECODER_WEIGHT: &str = "lm_head.decoder.weight";
const DECODER_BIAS: &str = "lm_head.decoder.bias";
const HEAD_BIAS: &str = "lm_head.bias";

/// The state dict by role: HF `XLMRobertaForMaskedLM` names (`model.` stripped, f32), the
/// length predictor's tensors (f32), and the names of everything else.
struct Parts {
    backbone: HashMap<String, Tensor>,
    length: HashMap<String, Tensor>,
    ignored: Vec<String>,
}

fn split_state_dict(state: HashMap<String, Tensor>, file: &Path) -> Result<Parts> {
    let mut parts = Parts {
        backbone: HashMap::new(),
        length: HashMap::new(),
        ignored: Vec::new(),
    };
    for (name, tensor) in state {
        if let Some(hf) = name.strip_prefix("model.")
            && !hf.ends_with("position_ids")
        {
            parts
                .backbone
                .insert(hf.to_owned(), tensor.to_dtype(DType::F32)?);
        } else if name.starts_with("length_trm.") || name.starts_with("length_predictor.") {
            parts.length.insert(name, tensor.to_dtype(DType::F32)?);
        } else {
            parts.ignored.push(name);
        }
    }
    parts.ignored.sort();
    if !parts.backbone.keys().any(|k| k.starts_with("roberta.")) {
        let mut some: Vec<&String> = parts.ignored.iter().take(5).collect();
        some.sort();
        return Err(bad(
            file,
            format!(
                "not a DiffusionLLM XLM-R checkpoint: no model.roberta.* tensors (found e.g. {some:?})"
            ),
        ));
    }
    if !parts.ignored.is_empty() {
        tracing::warn!(
            "{}: not imported: {}",
            file.display(),
            parts.ignored.join(", ")
        );
    }
    Ok(parts)
}

/// Resolves the decoder as the authors' model computes it: `lm_head.decoder.bias` (when
/// saved) becomes `lm_head.bias`; an empty or embedding-equal decoder weight means tied.
fn normalise_head(mut t: HashMap<String, Tensor>) -> Result<(HashMap<String, Tensor>, bool)> {
    if let Some(bias) = t.remove(DECODER_BIAS)
        && bias.elem_count() > 0
    {
        t.insert(HEAD_BIAS.into(), bias);
    }
    let tied = match (t.get(DECODER_WEIGHT), t.get(WORD_EMBEDDINGS)) {
        (None, _) => true,
        (Some(d), _) if d.elem_count() == 0 => true,
        (Some(d), Some(w)) if d.dims() == w.dims() => {
            // Count the differing elements in f32 (a u8 sum would wrap).
            d.ne(w)?
                .to_dtype(DType::F32)?
                .sum_all()?
                .to_scalar::<f32>()?
                == 0.0
        }
        _ => false,
    };
    if tied {
        t.remove(DECODER_WEIGHT);
    }
    Ok((t, tied))
}

/// The length predictor's shape from the backbone's config, as the authors build it
/// (`d_model = hidden`, `nhead = heads`, `dim_feedforward = intermediate`, torch defaults
/// for dropout and LayerNorm epsilon); the number of classes from the saved head.
fn length_config(
    c: &Config,
    length: &HashMap<String, Tensor>,
    file: &Path,
) -> Result<LengthPredictorConfig> {
    let head = "length_predictor.2.weight";
    let classes = length
        .get(head)
        .ok_or_else(|| bad(file, format!("the length predictor has no {head}")))?
        .dim(0)?;
    Ok(LengthPredictorConfig {
        hidden_size: c.hidden_size,
        num_attention_heads: c.num_attention_heads,
        intermediate_size: c.intermediate_size,
        num_classes: classes,
        dropout: TORCH_ENCODER_DROPOUT,
        layer_norm_eps: TORCH_LAYER_NORM_EPS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_global_step_is_chosen_by_number_or_by_the_latest_file() {
        let dir = tempfile::tempdir().unwrap();
        for step in ["global_step3", "global_step12", "global_step7"] {
            std::fs::create_dir(dir.path().join(step)).unwrap();
            std::fs::write(dir.path().join(step).join(ZERO_MODEL_STATES), b"").unwrap();
        }
        let (file, key) = locate_state_dict(dir.path()).unwrap();
        assert_eq!(
            (file, key),
            (
                dir.path().join("global_step12").join(ZERO_MODEL_STATES),
                Some("module")
            )
        );
        std::fs::write(dir.path().join("latest"), "global_step7\n").unwrap();
        assert_eq!(
            locate_state_dict(dir.path()).unwrap().0,
            dir.path().join("global_step7").join(ZERO_MODEL_STATES)
        );
        std::fs::write(dir.path().join("latest"), "global_step9").unwrap();
        let e = locate_state_dict(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("global_step9") && e.contains("does not exist"),
            "{e}"
        );
    }

    #[test]
    fn empty_folders_and_lora_adapters_are_refused_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let e = locate_state_dict(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("pytorch_model.bin") && e.contains("global_step"),
            "{e}"
        );
        std::fs::write(dir.path().join("adapter_model.bin"), b"").unwrap();
        let e = locate_state_dict(dir.path()).unwrap_err().to_string();
        assert!(e.contains("LoRA"), "{e}");
    }

    #[test]
    fn an_empty_or_equal_decoder_is_tied_and_the_decoder_bias_wins() {
        let dev = candle_core::Device::Cpu;
        let w = Tensor::new(&[[1f32, 2.], [3., 4.]], &dev).unwrap();
        let mk = |decoder: Tensor| {
            HashMap::from([
                (WORD_EMBEDDINGS.to_string(), w.clone()),
                (DECODER_WEIGHT.to_string(), decoder),
                (
                    DECODER_BIAS.to_string(),
                    Tensor::new(&[5f32, 6.], &dev).unwrap(),
                ),
                (
                    HEAD_BIAS.to_string(),
                    Tensor::new(&[0f32, 0., 0.], &dev).unwrap(),
                ),
            ])
        };
        let empty = Tensor::zeros(0, DType::F32, &dev).unwrap();
        for (decoder, tied) in [
            (empty, true),
            (w.clone(), true),
            ((&w + 1.0).unwrap(), false),
        ] {
            let (t, is_tied) = normalise_head(mk(decoder)).unwrap();
            assert_eq!(is_tied, tied);
            assert_eq!(t.contains_key(DECODER_WEIGHT), !tied);
            assert_eq!(t[HEAD_BIAS].to_vec1::<f32>().unwrap(), [5., 6.]);
            assert!(!t.contains_key(DECODER_BIAS));
        }
    }
}
