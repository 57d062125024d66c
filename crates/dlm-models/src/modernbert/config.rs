//! The fields of HF's `ModernBertConfig` beyond those all families share ([`Config`]),
//! with `transformers`' defaults, read from the config's extra fields and checked.

use crate::config::{Activation, Config};
use crate::error::{ModelError, Result};
use serde::Deserialize;
use std::path::Path;

fn default_gelu() -> Activation {
    Activation::Gelu
}
fn default_norm_eps() -> f64 {
    1e-5
}
fn default_global_theta() -> f64 {
    160_000.0
}
fn default_local_theta() -> Option<f64> {
    Some(10_000.0)
}
fn default_every() -> usize {
    3
}
fn default_window() -> usize {
    128
}
fn default_true() -> bool {
    true
}
fn default_cutoff() -> Option<f64> {
    Some(2.0)
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ModernBertConfig {
    #[serde(default = "default_gelu")]
    pub hidden_activation: Activation,
    #[serde(default = "default_gelu")]
    pub classifier_activation: Activation,
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    /// LayerNorms have a bias.
    #[serde(default)]
    pub norm_bias: bool,
    /// `Wqkv` and the attention's `Wo` have biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// `Wi` and the MLP's `Wo` have biases.
    #[serde(default)]
    pub mlp_bias: bool,
    /// The head's dense layer has a bias.
    #[serde(default)]
    pub classifier_bias: bool,
    #[serde(default = "default_true")]
    pub decoder_bias: bool,
    #[serde(default = "default_global_theta")]
    pub global_rope_theta: f64,
    /// `null`: local layers use the global theta.
    #[serde(default = "default_local_theta")]
    pub local_rope_theta: Option<f64>,
    /// Layer `i` attends globally when `i % global_attn_every_n_layers == 0`.
    #[serde(default = "default_every")]
    pub global_attn_every_n_layers: usize,
    /// Width of the local layers' window: keys within `local_attention / 2` of the query.
    #[serde(default = "default_window")]
    pub local_attention: usize,
    #[serde(default)]
    pub embedding_dropout: f64,
    #[serde(default)]
    pub attention_dropout: f64,
    #[serde(default)]
    pub mlp_dropout: f64,
    /// Fresh weights are normal(0, std) truncated at ± this many std (`null`: 3).
    #[serde(default = "default_cutoff")]
    initializer_cutoff_factor: Option<f64>,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
}

impl ModernBertConfig {
    /// Reads and checks the ModernBERT fields of `config` (loaded from `path`).
    pub fn from_config(config: &Config, path: &Path) -> Result<ModernBertConfig> {
        let invalid = |message: String| ModelError::Config {
            path: path.into(),
            message,
        };
        let extra = serde_json::Value::Object(config.extra.clone());
        let m: ModernBertConfig =
            serde_json::from_value(extra).map_err(|e| invalid(e.to_string()))?;
        if m.global_attn_every_n_layers == 0 {
            return Err(invalid(
                "global_attn_every_n_layers must be at least 1".into(),
            ));
        }
        if config.head_dim() % 2 != 0 {
            return Err(invalid(format!(
                "rotary embeddings need an even head size; hidden_size {} / num_attention_heads {} is {}",
                config.hidden_size,
                config.num_attention_heads,
                config.head_dim()
            )));
        }
        if m.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(invalid(
                "rope_scaling is not supported (expected null or absent)".into(),
            ));
        }
        Ok(m)
    }

    /// Whether layer `i` attends to the whole sequence (else to its local window).
    pub fn is_global(&self, layer: usize) -> bool {
        layer % self.global_attn_every_n_layers == 0
    }

    /// Fresh weights are truncated at ± this many standard deviations.
    pub fn init_cutoff(&self) -> f64 {
        self.initializer_cutoff_factor.unwrap_or(3.0)
    }

    /// The rotary base of the local layers.
    pub fn local_theta(&self) -> f64 {
        self.local_rope_theta.unwrap_or(self.global_rope_theta)
    }
}
