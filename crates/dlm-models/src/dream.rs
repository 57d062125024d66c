//! Dream (`DreamModel`, `config.json` `model_type: "Dream"`), the diffusion LM adapted
//! from Qwen2.5: Qwen2's tensors (`model.embed_tokens`, `model.layers.N.self_attn.{q, k,
//! v, o}_proj` with Q/K/V biases, `mlp.{gate, up, down}_proj`, `input_layernorm`,
//! `post_attention_layernorm`, `model.norm`, `lm_head`), grouped-query attention, no
//! causal mask, and the one-position logit shift of its generation code: the distribution
//! at position i is the network's output at i − 1 (`crate::llama` applies it).

use crate::config::{Activation, Config};
use crate::error::{ModelError, Result};
use crate::llama::{LlamaConfig, Part};
use serde_json::Value;
use std::path::Path;

fn name(part: Part, layer: usize) -> String {
    let at = |n: &str| format!("model.layers.{layer}.{n}");
    match part {
        Part::Embed => "model.embed_tokens".into(),
        Part::AttnNorm => at("input_layernorm"),
        Part::Q => at("self_attn.q_proj"),
        Part::K => at("self_attn.k_proj"),
        Part::V => at("self_attn.v_proj"),
        Part::O => at("self_attn.o_proj"),
        Part::MlpNorm => at("post_attention_layernorm"),
        Part::Gate => at("mlp.gate_proj"),
        Part::Up => at("mlp.up_proj"),
        Part::Down => at("mlp.down_proj"),
        Part::FinalNorm => "model.norm".into(),
        Part::LmHead => "lm_head".into(),
    }
}

/// The network's settings from a Dream `config.json` (already read into `c`).
pub(crate) fn config(c: &Config, path: &Path) -> Result<LlamaConfig> {
    let get = |k: &str| c.extra.get(k).filter(|v| !v.is_null());
    let invalid = |message: String| ModelError::Config { path: path.into(), message };
    if c.hidden_act != Activation::Silu {
        return Err(invalid(format!("Dream hidden_act {:?} is not supported (expected \"silu\")", c.hidden_act)));
    }
    if let Some(v) = get("rope_scaling") {
        return Err(invalid(format!("Dream rope_scaling = {v} is not supported (expected null)")));
    }
    let heads = c.num_attention_heads;
    let kv_heads = get("num_key_value_heads").and_then(Value::as_u64).map_or(heads, |k| k as usize);
    if kv_heads == 0 || heads % kv_heads != 0 {
        return Err(invalid(format!("num_key_value_heads {kv_heads} does not divide num_attention_heads {heads}")));
    }
    Ok(LlamaConfig {
        heads,
        kv_heads,
        eps: get("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6),
        theta: get("rope_theta").and_then(Value::as_f64).unwrap_or(10_000.0),
        qkv_bias: true,
        rope_f32: false,
        shift: true,
        name,
    })
}
