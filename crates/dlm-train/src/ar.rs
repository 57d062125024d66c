//! The autoregressive baseline's checkpoints and decoding. A model directory trained with
//! `objective.kind = "ar"` carries `"dlm_objective": "ar"` in its `config.json` and must
//! be loaded with causal attention ([`load_options_for`]); [`ar_generate`] decodes from it
//! greedily, one token per forward pass, until `</s>` ([`crate::beam`] has beam search).

use crate::error::{Result, TrainError};
use candle_core::Tensor;
use dlm_data::SpecialTokens;
use dlm_models::{LoadOptions, MaskedLm};
use std::path::Path;

/// The key written into `config.json` and its value for the AR baseline.
pub const OBJECTIVE_KEY: &str = "dlm_objective";
pub const AR_FLAG: &str = "ar";

/// Adds `"dlm_objective": kind` to `dir/config.json` (temp file + rename).
pub fn mark_objective(dir: &Path, kind: &str) -> Result<()> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let mut value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| TrainError::BadCheckpoint {
            path: path.clone(),
            message: e.to_string(),
        })?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert(OBJECTIVE_KEY.into(), serde_json::Value::String(kind.into()));
    }
    let tmp = dir.join("config.json.tmp");
    let text =
        serde_json::to_string_pretty(&value).map_err(|e| TrainError::Invalid(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| TrainError::io(&path, e))
}

/// The `dlm_objective` of a model directory (`None` for an ordinary MLM checkpoint).
pub fn objective_of(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| TrainError::BadCheckpoint {
            path: path.clone(),
            message: e.to_string(),
        })?;
    Ok(value
        .get(OBJECTIVE_KEY)
        .and_then(|v| v.as_str())
        .map(String::from))
}

/// `base` with causal attention switched on when `dir` is an AR-baseline checkpoint.
pub fn load_options_for(dir: &Path, base: &LoadOptions) -> Result<LoadOptions> {
    let causal = objective_of(dir)?.as_deref() == Some(AR_FLAG);
    Ok(LoadOptions {
        causal: causal || base.causal,
        ..base.clone()
    })
}

/// Next-token logits of each of `seqs` (equal lengths, model ids) with a causal model:
/// `[rows][V]`, with `<mask>`, `<pad>` and `<s>` set to −∞ so they are never produced.
pub(crate) fn next_logits(
    model: &dyn MaskedLm,
    seqs: &[Vec<u32>],
    special: &SpecialTokens,
) -> Result<Vec<Vec<f32>>> {
    let device = model.device().clone();
    let (rows, n) = (seqs.len(), seqs.first().map_or(0, Vec::len));
    if rows == 0 || n == 0 || seqs.iter().any(|s| s.len() != n) {
        return Err(TrainError::Invalid(format!(
            "next_logits needs non-empty sequences of one length, got {:?}",
            seqs.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    let flat: Vec<u32> = seqs.concat();
    let ids = Tensor::from_vec(flat, (rows, n), &device)?;
    let attention = Tensor::ones((rows, n), candle_core::DType::U32, &device)?;
    let hidden = model.encode(&ids, &attention)?; // [rows, n, h]
    let last = hidden.narrow(1, n - 1, 1)?.squeeze(1)?; // [rows, h]
    let mut logits = model
        .project(&last)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec2::<f32>()?; // [rows, V]
    let vocab = model.vocab_size();
    for row in &mut logits {
        for b in [special.mask, special.pad, special.bos] {
            if (b as usize) < vocab {
                row[b as usize] = f32::NEG_INFINITY;
            }
        }
    }
    Ok(logits)
}

/// Greedy decoding from `prefix` (`<s> prompt`, model ids) with a causal model: at most
/// `max_new` tokens, stopping at `</s>` (not returned). `<mask>`, `<pad>` and `<s>` are
/// never produced. [`crate::beam_search`] with beam 1 gives the same tokens.
pub fn ar_generate(
    model: &dyn MaskedLm,
    prefix: &[u32],
    max_new: usize,
    special: &SpecialTokens,
) -> Result<Vec<u32>> {
    let room = model.max_sequence_length().saturating_sub(prefix.len());
    let mut seq = prefix.to_vec();
    let mut out = Vec::new();
    for _ in 0..max_new.min(room) {
        let logits = next_logits(model, std::slice::from_ref(&seq), special)?;
        // First maximum, as torch's argmax.
        let next = logits[0]
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |best, (i, &x)| {
                if x > best.1 { (i, x) } else { best }
            })
            .0 as u32;
        if next == special.eos {
            break;
        }
        seq.push(next);
        out.push(next);
    }
    Ok(out)
}
