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
    /// LLaDA (`LLaDAModelLM`, `model_type: "llada"`): a bidirectional Llama.
    Llada,
    /// Dream (`DreamModel`, `model_type: "Dream"`): a bidirectional Qwen2 whose logits at
    /// position i predict the token at i + 1.
    Dream,
}

impl Family {
    /// The prefix HF puts before encoder tensors in `*ForMaskedLM` checkpoints.
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta | Family::XlmRoberta => "roberta",
            Family::ModernBert | Family::Dream => "model",
            Family::Llada => "model.transformer",
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
            Family::Llada => "wte.weight",
            Family::Dream => "embed_tokens.weight",
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
    /// SiLU (`x·σ(x)`), the gate of LLaDA's and Dream's SwiGLU MLPs.
    #[serde(rename = "silu")]
    Silu,
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

/// LLaDA's `config.json` names (`LLaDAConfig`) of the fields every family shares:
/// (shared name, LLaDA's name).
const LLADA_ALIASES: [(&str, &str); 4] =
    [("hidden_size", "d_model"), ("num_hidden_layers", "n_layers"), ("num_attention_heads", "n_heads"), ("intermediate_size", "mlp_hidden_size")];

/// A LLaDA config's own names copied to the shared ones (the MLP width from `mlp_ratio`
/// when `mlp_hidden_size` is null, the context from `max_sequence_length`, tying from
/// `weight_tying`); other configs are left as they are.
fn llada_aliases(map: &mut serde_json::Map<String, serde_json::Value>) {
    if map.get("model_type").and_then(|v| v.as_str()) != Some("llada") {
        return;
    }
    for (alias, own) in LLADA_ALIASES {
        if let Some(v) = map.remove(own).filter(|v| !v.is_null()) {
            map.insert(alias.into(), v);
        }
    }
    if !map.contains_key("intermediate_size")
        && let (Some(d), Some(r)) = (map.get("hidden_size").and_then(|v| v.as_u64()), map.get("mlp_ratio").and_then(|v| v.as_u64()))
    {
        map.insert("intermediate_size".into(), (d * r).into());
    }
    if let Some(v) = map.remove("max_sequence_length") {
        map.insert("max_position_embeddings".into(), v);
    }
    if let Some(v) = map.remove("weight_tying") {
        map.insert("tie_word_embeddings".into(), v);
    }
}

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
        let mut value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::Config { path: path.into(), message: e.to_string() })?;
        if let Some(map) = value.as_object_mut() {
            llada_aliases(map);
        }
        let config: Config = serde_json::from_value(value)
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
            "llada" => Ok(Family::Llada),
            "Dream" | "dream" => Ok(Family::Dream),
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
            "bert" | "modernbert" | "llada" | "Dream" | "dream" => self.max_position_embeddings,
            _ => self.max_position_embeddings.saturating_sub(self.pad_id() as usize + 1),
        }
    }

    /// The JSON written by `Backbone::save`. ModernBERT, LLaDA and Dream have no BERT-only
    /// fields (`layer_norm_eps`, ...; Dream has `hidden_act`); their defaults are left
    /// out, not invented. LLaDA's config is written under LLaDA's own names.
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        let mut value = serde_json::to_value(self)?;
        let own_fields = !matches!(self.model_type.as_str(), "bert" | "roberta" | "camembert" | "xlm-roberta");
        if own_fields && let Some(map) = value.as_object_mut() {
            // Dream (a Qwen2 config) keeps its `hidden_act`; no other BERT-only field.
            for key in BERT_ONLY.into_iter().filter(|&k| !(k == "hidden_act" && self.model_type == "Dream")) {
                map.remove(key);
            }
            if self.model_type == "llada" {
                // LLaDAConfig reads its own names; `hidden_size` & co. are read-only
                // properties there, so writing them would make the config unloadable.
                for (alias, own) in LLADA_ALIASES {
                    if let Some(v) = map.remove(alias) {
                        map.insert(own.into(), v);
                    }
                }
                map.remove("max_position_embeddings");
                map.remove("tie_word_embeddings");
                map.insert("max_sequence_length".into(), self.max_position_embeddings.into());
                map.insert("weight_tying".into(), self.tie_word_embeddings.into());
            }
        }
        Ok(value)
    }

    /// A special token id of `config.json` (`bos_token_id`, `eos_token_id`,
    /// `pad_token_id`, `mask_token_id`), or, where LLaDA's or Dream's config leaves it out,
    /// the id of the released models' tokenizers (LLaDA: `<|startoftext|>` 126080,
    /// `<|endoftext|>` 126081 as end and padding, `<|mdm_mask|>` 126336; Dream:
    /// `<|endoftext|>` 151643 as start, end and padding, `<|mask|>` 151666).
    pub fn special_id(&self, key: &str) -> Option<u32> {
        let given = match key {
            "pad_token_id" => self.pad_token_id,
            _ => self.extra.get(key).and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok()),
        };
        given.or(match (self.model_type.as_str(), key) {
            ("llada", "bos_token_id") => Some(126_080),
            ("llada", "eos_token_id" | "pad_token_id") => Some(126_081),
            ("llada", "mask_token_id") => Some(126_336),
            ("Dream" | "dream", "bos_token_id" | "eos_token_id" | "pad_token_id") => Some(151_643),
            ("Dream" | "dream", "mask_token_id") => Some(151_666),
            _ => None,
        })
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
