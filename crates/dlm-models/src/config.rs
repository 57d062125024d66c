//! `config.json` of a checkpoint, with HuggingFace field names, and the family (BERT,
//! RoBERTa, XLM-R, ModernBERT) it selects. RoBERTa and XLM-R differ from BERT only in the
//! position-id offset (`padding_idx + 1`), the tensor-name prefix and the head's names;
//! ModernBERT is its own network, whose own fields `modernbert::ModernBertConfig` reads.

use crate::error::{ModelError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bert,
    Roberta,
    XlmRoberta,
    /// `ModernBertForMaskedLM`: rotary positions, local/global attention, GeGLU.
    ModernBert,
}

impl Family {
    /// The prefix HF puts before encoder tensors in `*ForMaskedLM` checkpoints.
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta | Family::XlmRoberta => "roberta",
            Family::ModernBert => "model",
        }
    }
    /// Whether position ids start at `padding_idx + 1` (fairseq convention).
    pub fn offset_positions(self) -> bool {
        matches!(self, Family::Roberta | Family::XlmRoberta)
    }
    /// The word-embedding matrix, relative to the encoder prefix.
    pub fn word_embeddings(self) -> &'static str {
        match self {
            Family::ModernBert => "embeddings.tok_embeddings.weight",
            _ => "embeddings.word_embeddings.weight",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    #[serde(rename = "gelu")]
    Gelu,
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
    #[serde(rename = "relu")]
    Relu,
}

fn default_act() -> Activation {
    Activation::Gelu
}
fn default_dropout() -> f64 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_true() -> bool {
    true
}
fn default_position_type() -> String {
    "absolute".into()
}

/// Fields of `Config` that only BERT-style configs have.
const BERT_ONLY: [&str; 6] = [
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "type_vocab_size",
    "layer_norm_eps",
    "position_embedding_type",
];

/// The fields of HF's `BertConfig`/`RobertaConfig`/`XLMRobertaConfig` that the encoder and
/// its MLM head use, and those all families share (ModernBERT's own are read from `extra`).
/// Unknown fields are kept in `extra` so a saved config round-trips.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ModelError::Io { path: path.into(), source })?;
        let config: Config = serde_json::from_str(&text)
            .map_err(|e| ModelError::Config { path: path.into(), message: e.to_string() })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        self.family(path)?;
        let invalid = |message: String| ModelError::Config { path: path.into(), message };
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return Err(invalid(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if self.position_embedding_type != "absolute" {
            return Err(invalid(format!(
                "position_embedding_type {:?} is not supported (expected \"absolute\")",
                self.position_embedding_type
            )));
        }
        if self.vocab_size == 0 || self.hidden_size == 0 {
            return Err(invalid("vocab_size and hidden_size must be positive".into()));
        }
        if self.max_sequence_length() == 0 {
            return Err(invalid(format!(
                "max_position_embeddings {} leaves no usable position",
                self.max_position_embeddings
            )));
        }
        Ok(())
    }

    pub fn family(&self, path: &Path) -> Result<Family> {
        match self.model_type.as_str() {
            "bert" => Ok(Family::Bert),
            "roberta" | "camembert" => Ok(Family::Roberta),
            "xlm-roberta" => Ok(Family::XlmRoberta),
            "modernbert" => Ok(Family::ModernBert),
            other => Err(ModelError::UnknownModelType { path: path.into(), found: other.into() }),
        }
    }

    /// The padding id that positions are offset from (RoBERTa: 1, BERT: 0; ModernBERT's
    /// HF default 50283).
    pub fn pad_id(&self) -> u32 {
        self.pad_token_id.unwrap_or(match self.model_type.as_str() {
            "bert" => 0,
            "modernbert" => 50283,
            _ => 1,
        })
    }

    /// Longest usable sequence: RoBERTa/XLM-R lose `padding_idx + 1` positions (514 → 512);
    /// BERT and ModernBERT (rotary, 8192) use all of them.
    pub fn max_sequence_length(&self) -> usize {
        match self.model_type.as_str() {
            "bert" | "modernbert" => self.max_position_embeddings,
            _ => self.max_position_embeddings.saturating_sub(self.pad_id() as usize + 1),
        }
    }

    /// The JSON written by `Backbone::save`. ModernBERT has no BERT-only fields
    /// (`hidden_act`, `layer_norm_eps`, ...); their defaults are left out, not invented.
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        let mut value = serde_json::to_value(self)?;
        if self.model_type == "modernbert"
            && let Some(map) = value.as_object_mut()
        {
            for key in BERT_ONLY {
                map.remove(key);
            }
        }
        Ok(value)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config> {
        let config: Config = serde_json::from_str(json).unwrap();
        config.validate(Path::new("config.json")).map(|_| config)
    }

    #[test]
    fn xlmr_has_512_usable_positions() {
        // 514 learned positions, pad = 1, positions start at 2: 514 - 2 = 512.
        let c = parse(r#"{"model_type":"xlm-roberta","vocab_size":250002,"hidden_size":768,
            "num_hidden_layers":12,"num_attention_heads":12,"intermediate_size":3072,
            "max_position_embeddings":514,"pad_token_id":1}"#)
        .unwrap();
        assert_eq!(c.max_sequence_length(), 512);
        assert_eq!(c.head_dim(), 64);
    }

    #[test]
    fn modernbert_uses_all_8192_positions_and_saves_without_bert_fields() {
        let c = parse(r#"{"model_type":"modernbert","vocab_size":50368,"hidden_size":768,
            "num_hidden_layers":22,"num_attention_heads":12,"intermediate_size":1152,
            "max_position_embeddings":8192,"pad_token_id":50283,"local_attention":128}"#)
        .unwrap();
        assert_eq!(c.family(Path::new("config.json")).unwrap(), Family::ModernBert);
        assert_eq!(c.max_sequence_length(), 8192);
        let json = c.to_json().unwrap();
        assert_eq!(json["local_attention"], 128);
        assert!(BERT_ONLY.iter().all(|k| json.get(k).is_none()), "{json}");
    }

    #[test]
    fn unknown_model_type_is_named() {
        let e = parse(r#"{"model_type":"gpt2","vocab_size":10,"hidden_size":8,
            "num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":16,
            "max_position_embeddings":16}"#)
        .unwrap_err()
        .to_string();
        assert!(e.contains("gpt2") && e.contains("config.json"), "{e}");
    }

    #[test]
    fn heads_must_divide_hidden() {
        let e = parse(r#"{"model_type":"bert","vocab_size":10,"hidden_size":10,
            "num_hidden_layers":1,"num_attention_heads":3,"intermediate_size":16,
            "max_position_embeddings":16}"#)
        .unwrap_err()
        .to_string();
        assert!(e.contains("not divisible"), "{e}");
    }
}
