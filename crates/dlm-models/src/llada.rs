//! LLaDA (`LLaDAModelLM`, `config.json` `model_type: "llada"`), the bidirectional Llama of
//! "Large Language Diffusion Models" as its released `modeling_llada.py` builds it with
//! `block_type: "llama"`: tensors `model.transformer.wte`,
//! `model.transformer.blocks.N.{attn_norm, q_proj, k_proj, v_proj, attn_out, ff_norm,
//! ff_proj, up_proj, ff_out}`, `model.transformer.ln_f`, `model.transformer.ff_out`
//! (absent when `weight_tying`). The MLP is `ff_out(silu(ff_proj(x)) · up_proj(x))`; queries
//! and keys are rotated in f32 (`rope_full_precision`). Configurations the released
//! models do not use (ALiBi, learned positions, LayerNorm, biases, logit scaling, a padded
//! embedding) are refused with the field that selects them.

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::llama::{LlamaConfig, Part};
use serde_json::Value;
use std::path::Path;

fn name(part: Part, layer: usize) -> String {
    let block = |n: &str| format!("model.transformer.blocks.{layer}.{n}");
    match part {
        Part::Embed => "model.transformer.wte".into(),
        Part::AttnNorm => block("attn_norm"),
        Part::Q => block("q_proj"),
        Part::K => block("k_proj"),
        Part::V => block("v_proj"),
        Part::O => block("attn_out"),
        Part::MlpNorm => block("ff_norm"),
        Part::Gate => block("ff_proj"),
        Part::Up => block("up_proj"),
        Part::Down => block("ff_out"),
        Part::FinalNorm => "model.transformer.ln_f".into(),
        Part::LmHead => "model.transformer.ff_out".into(),
    }
}

/// The network's settings from a LLaDA `config.json` (already read into `c`).
pub(crate) fn config(c: &Config, path: &Path) -> Result<LlamaConfig> {
    let get = |k: &str| c.extra.get(k).filter(|v| !v.is_null());
    let refuse = |field: &str, found: &Value, expected: &str| ModelError::Config {
        path: path.into(),
        message: format!("LLaDA {field} = {found} is not supported (expected {expected}, as in the released models)"),
    };
    let expect = |field: &str, ok: &dyn Fn(&Value) -> bool, expected: &str| match get(field) {
        Some(v) if !ok(v) => Err(refuse(field, v, expected)),
        _ => Ok(()),
    };
    let is = |s: &'static str| move |v: &Value| v.as_str() == Some(s);
    let off = |v: &Value| v.as_bool() == Some(false);
    expect("block_type", &is("llama"), "\"llama\"")?;
    expect("layer_norm_type", &is("rms"), "\"rms\"")?;
    expect("activation_type", &is("silu"), "\"silu\"")?;
    expect("rope", &|v| v.as_bool() == Some(true), "true")?;
    for field in ["alibi", "include_bias", "input_emb_norm", "scale_logits", "attention_layer_norm"] {
        expect(field, &off, "false")?;
    }
    expect("embedding_size", &|v| v.as_u64() == Some(c.vocab_size as u64), &format!("vocab_size ({})", c.vocab_size))?;
    expect("block_group_size", &|v| v.as_u64() == Some(1), "1")?;
    let heads = c.num_attention_heads;
    let kv_heads = get("n_kv_heads").and_then(Value::as_u64).map_or(heads, |k| k as usize);
    if kv_heads == 0 || heads % kv_heads != 0 {
        return Err(refuse("n_kv_heads", &kv_heads.into(), &format!("a divisor of n_heads ({heads})")));
    }
    Ok(LlamaConfig {
        heads,
        kv_heads,
        eps: get("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-5),
        theta: get("rope_theta").and_then(Value::as_f64).unwrap_or(10_000.0),
        qkv_bias: get("include_qkv_bias").and_then(Value::as_bool).unwrap_or(false),
        rope_f32: get("rope_full_precision").and_then(Value::as_bool).unwrap_or(true),
        shift: false,
        name,
    })
}
