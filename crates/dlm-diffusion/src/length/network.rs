//! The length predictor network (SPEC §5; paper Appendix A): the frozen backbone's hidden
//! states of the prompt → one post-LN transformer encoder layer (as
//! `torch.nn.TransformerEncoderLayer(d=h, heads, ff=intermediate, ReLU, dropout 0.1)` with a
//! key padding mask) → masked mean pooling → `Linear(h, ff) → tanh → Linear(ff, classes)`.
//! Parameters carry the released code's state-dict names (`length_trm.layers.0.*`,
//! `length_predictor.{0,2}.*`), so its checkpoints map onto this file directly.

use crate::batch::ids_and_attention;
use crate::error::{DiffusionError, Result};
use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::ops::{layer_norm_slow, softmax};
use dlm_models::MaskedLm;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// File names inside a model directory.
pub const LENGTH_PREDICTOR_WEIGHTS: &str = "length_predictor.safetensors";
pub const LENGTH_PREDICTOR_CONFIG: &str = "length_predictor.json";

const LAYER: &str = "length_trm.layers.0.";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthPredictorConfig {
    /// d_model: the backbone's hidden size.
    pub hidden_size: usize,
    /// The backbone's number of attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width and head width: the backbone's intermediate size.
    pub intermediate_size: usize,
    /// Length classes: the backbone's `max_position_embeddings` (514 for XLM-R).
    pub num_classes: usize,
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// `torch.nn.LayerNorm`'s default.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn default_dropout() -> f64 {
    0.1
}
fn default_eps() -> f64 {
    1e-5
}

impl LengthPredictorConfig {
    fn validate(&self) -> Result<()> {
        let h = self.hidden_size;
        if h == 0 || self.num_attention_heads == 0 || !h.is_multiple_of(self.num_attention_heads) {
            return Err(DiffusionError::InvalidConfig(format!(
                "length predictor: hidden size {h} must be a positive multiple of the {} heads",
                self.num_attention_heads
            )));
        }
        if self.intermediate_size == 0 || self.num_classes == 0 || !(0.0..1.0).contains(&self.dropout) {
            return Err(DiffusionError::InvalidConfig(format!("length predictor: invalid config {self:?}")));
        }
        Ok(())
    }

    /// Every parameter's name and shape.
    fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (h, f, c) = (self.hidden_size, self.intermediate_size, self.num_classes);
        let l = |n: &str| format!("{LAYER}{n}");
        vec![
            (l("self_attn.in_proj_weight"), vec![3 * h, h]),
            (l("self_attn.in_proj_bias"), vec![3 * h]),
            (l("self_attn.out_proj.weight"), vec![h, h]),
            (l("self_attn.out_proj.bias"), vec![h]),
            (l("linear1.weight"), vec![f, h]),
            (l("linear1.bias"), vec![f]),
            (l("linear2.weight"), vec![h, f]),
            (l("linear2.bias"), vec![h]),
            (l("norm1.weight"), vec![h]),
            (l("norm1.bias"), vec![h]),
            (l("norm2.weight"), vec![h]),
            (l("norm2.bias"), vec![h]),
            ("length_predictor.0.weight".into(), vec![f, h]),
            ("length_predictor.0.bias".into(), vec![f]),
            ("length_predictor.2.weight".into(), vec![c, f]),
            ("length_predictor.2.bias".into(), vec![c]),
        ]
    }
}

/// The length predictor's parameters (f32 `Var`s, so that a training loop can optimise
/// them) and config.
pub struct LengthPredictor {
    cfg: LengthPredictorConfig,
    params: BTreeMap<String, Var>,
}

/// PyTorch's initialisation, drawn from a seeded ChaCha generator: `in_proj_weight`
/// Xavier-uniform, attention biases 0, other linear weights and biases
/// `U(±1/sqrt(fan_in))` (fan_in = the weight's input width), LayerNorm 1 and 0.
fn init_values(name: &str, shape: &[usize], fan_in: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let mut uniform = |bound: f64| -> Vec<f32> { (0..n).map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32).collect() };
    if name.contains("norm") {
        vec![if name.ends_with("weight") { 1.0 } else { 0.0 }; n]
    } else if name.ends_with("in_proj_bias") || name.ends_with("out_proj.bias") {
        vec![0.0; n]
    } else if name.ends_with("in_proj_weight") {
        uniform((6.0 / (shape[0] + shape[1]) as f64).sqrt())
    } else {
        uniform(1.0 / (fan_in as f64).sqrt())
    }
}

/// Inverted dropout with masks drawn from a seeded generator; identity when `rng` is None
/// (evaluation).
struct Dropout<'a> {
    p: f64,
    rng: Option<&'a mut ChaCha8Rng>,
}

impl Dropout<'_> {
    fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        let Some(rng) = self.rng.as_deref_mut() else { return Ok(x.clone()) };
        if self.p == 0.0 {
            return Ok(x.clone());
        }
        let scale = (1.0 / (1.0 - self.p)) as f32;
        let keep: Vec<f32> =
            (0..x.elem_count()).map(|_| if rng.random::<f64>() >= self.p { scale } else { 0.0 }).collect();
        Ok((x * Tensor::from_vec(keep, x.shape(), x.device())?)?)
    }
}

impl LengthPredictor {
    /// A freshly initialised (trainable) predictor.
    pub fn new(cfg: LengthPredictorConfig, device: &Device, seed: u64) -> Result<LengthPredictor> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shapes = cfg.shapes();
        let mut params = BTreeMap::new();
        for (name, shape) in &shapes {
            let weight = name.replace("bias", "weight");
            let fan_in = shapes.iter().find(|(n, _)| *n == weight).map_or(1, |(_, s)| s[s.len() - 1]);
            let values = init_values(name, shape, fan_in, &mut rng);
            let var = Var::from_tensor(&Tensor::from_vec(values, shape.as_slice(), device)?)?;
            params.insert(name.clone(), var);
        }
        Ok(LengthPredictor { cfg, params })
    }

    /// Loads `length_predictor.json` and `length_predictor.safetensors` from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<LengthPredictor> {
        let cfg_path = dir.join(LENGTH_PREDICTOR_CONFIG);
        let weights_path = dir.join(LENGTH_PREDICTOR_WEIGHTS);
        let file_err = |path: &Path, message: String| DiffusionError::File { path: path.into(), message };
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| file_err(&cfg_path, format!("cannot read: {e}")))?;
        let cfg: LengthPredictorConfig =
            serde_json::from_str(&text).map_err(|e| file_err(&cfg_path, format!("not a length predictor config: {e}")))?;
        let tensors = candle_core::safetensors::load(&weights_path, device)
            .map_err(|e| file_err(&weights_path, format!("cannot load weights: {e}")))?;
        Self::from_tensors(cfg, &tensors, &weights_path)
    }

    /// A predictor of `cfg` from tensors under the released code's names
    /// (`length_trm.layers.0.*`, `length_predictor.{0,2}.*`; other names are ignored);
    /// `source` names where they came from in errors.
    pub fn from_tensors(cfg: LengthPredictorConfig, tensors: &HashMap<String, Tensor>, source: &Path) -> Result<LengthPredictor> {
        cfg.validate()?;
        let file_err = |message: String| DiffusionError::File { path: source.into(), message };
        let mut params = BTreeMap::new();
        for (name, shape) in cfg.shapes() {
            let t = tensors.get(&name).ok_or_else(|| file_err(format!("tensor {name:?} not found")))?;
            if t.dims() != shape.as_slice() {
                return Err(file_err(format!("tensor {name:?} has shape {:?}, expected {shape:?}", t.dims())));
            }
            params.insert(name, Var::from_tensor(&t.to_dtype(DType::F32)?)?);
        }
        Ok(LengthPredictor { cfg, params })
    }

    /// Writes the config and weights into `dir` (which must exist).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let cfg_path = dir.join(LENGTH_PREDICTOR_CONFIG);
        let weights_path = dir.join(LENGTH_PREDICTOR_WEIGHTS);
        let json = serde_json::to_string_pretty(&self.cfg)
            .map_err(|e| DiffusionError::File { path: cfg_path.clone(), message: e.to_string() })?;
        std::fs::write(&cfg_path, json + "\n")
            .map_err(|e| DiffusionError::File { path: cfg_path.clone(), message: format!("cannot write: {e}") })?;
        let tensors: HashMap<String, Tensor> =
            self.params.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
        candle_core::safetensors::save(&tensors, &weights_path)
            .map_err(|e| DiffusionError::File { path: weights_path, message: format!("cannot write: {e}") })
    }

    pub fn config(&self) -> &LengthPredictorConfig {
        &self.cfg
    }

    /// The trainable parameters, for an optimizer.
    pub fn vars(&self) -> Vec<Var> {
        self.params.values().cloned().collect()
    }

    fn p(&self, name: &str) -> Result<&Tensor> {
        self.params
            .get(name)
            .map(|v| v.as_tensor())
            .ok_or_else(|| DiffusionError::InvalidConfig(format!("length predictor has no parameter {name:?}")))
    }

    fn linear(&self, x: &Tensor, prefix: &str) -> Result<Tensor> {
        let w = self.p(&format!("{prefix}weight"))?;
        let b = self.p(&format!("{prefix}bias"))?;
        Ok(x.broadcast_matmul(&w.t()?)?.broadcast_add(b)?)
    }

    fn norm(&self, x: &Tensor, prefix: &str) -> Result<Tensor> {
        let w = self.p(&format!("{prefix}weight"))?;
        let b = self.p(&format!("{prefix}bias"))?;
        Ok(layer_norm_slow(x, w, b, self.cfg.layer_norm_eps as f32)?)
    }

    /// Length logits `[b, classes]` from backbone features `[b, s, h]` and the prompt's
    /// attention mask `[b, s]` (1 = token). Dropout is active only when `rng` is given.
    pub fn forward(&self, features: &Tensor, attention: &Tensor, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let x = features.to_dtype(DType::F32)?;
        let (b, s, h) = x.dims3()?;
        if h != self.cfg.hidden_size {
            return Err(DiffusionError::InvalidConfig(format!(
                "length predictor expects hidden size {}, the backbone gives {h}",
                self.cfg.hidden_size
            )));
        }
        let (nh, hd) = (self.cfg.num_attention_heads, h / self.cfg.num_attention_heads);
        let mut drop = Dropout { p: self.cfg.dropout, rng };
        let keep = attention.to_dtype(DType::F32)?; // [b, s]

        // Self-attention with a key padding mask.
        let qkv = self.linear(&x, &format!("{LAYER}self_attn.in_proj_"))?; // [b, s, 3h]
        let heads = |i: usize| -> Result<Tensor> {
            Ok(qkv.narrow(2, i * h, h)?.reshape((b, s, nh, hd))?.transpose(1, 2)?.contiguous()?) // [b, nh, s, hd]
        };
        let q = (heads(0)? * (1.0 / (hd as f64).sqrt()))?;
        let (k, v) = (heads(1)?, heads(2)?);
        let pad_bias = ((&keep - 1.0)? * 1e9)?.reshape((b, 1, 1, s))?; // 0 or -1e9
        let scores = q.matmul(&k.t()?.contiguous()?)?.broadcast_add(&pad_bias)?; // [b, nh, s, s]
        let attn = drop.apply(&softmax(&scores, D::Minus1)?)?;
        let ctx = attn.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, s, h))?; // [b, s, h]
        let sa = self.linear(&ctx, &format!("{LAYER}self_attn.out_proj."))?;
        let x = self.norm(&(x + drop.apply(&sa)?)?, &format!("{LAYER}norm1."))?;

        // Feed-forward.
        let ff = self.linear(&x, &format!("{LAYER}linear1."))?.relu()?; // [b, s, ff]
        let ff = self.linear(&drop.apply(&ff)?, &format!("{LAYER}linear2."))?;
        let x = self.norm(&(x + drop.apply(&ff)?)?, &format!("{LAYER}norm2."))?; // [b, s, h]

        // Masked mean pooling and the classifier head.
        let summed = x.broadcast_mul(&keep.unsqueeze(2)?)?.sum(1)?; // [b, h]
        let pooled = summed.broadcast_div(&keep.sum_keepdim(1)?)?;
        let z = self.linear(&pooled, "length_predictor.0.")?.tanh()?; // [b, ff]
        self.linear(&z, "length_predictor.2.") // [b, classes]
    }

    /// The frozen backbone's hidden states of the prefixes (`<s> prompt`, no gradient),
    /// padded with `pad`: `([b, s, h], attention [b, s])`.
    pub fn features(model: &dyn MaskedLm, prefixes: &[Vec<u32>], pad: u32) -> Result<(Tensor, Tensor)> {
        if prefixes.is_empty() || prefixes.iter().any(Vec::is_empty) {
            return Err(DiffusionError::InvalidBatch("length prediction needs at least one non-empty prompt".into()));
        }
        let s = prefixes.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(prefixes.len() * s);
        for p in prefixes {
            ids.extend_from_slice(p);
            ids.extend(std::iter::repeat_n(pad, s - p.len()));
        }
        let (ids, attention) = ids_and_attention(&ids, prefixes.len(), s, pad, model.device())?;
        let hidden = model.encode(&ids, &attention)?.detach();
        Ok((hidden, attention))
    }

    /// Length logits `[b, classes]` for prefixes, in evaluation mode.
    pub fn logits(&self, model: &dyn MaskedLm, prefixes: &[Vec<u32>], pad: u32) -> Result<Tensor> {
        let (hidden, attention) = Self::features(model, prefixes, pad)?;
        self.forward(&hidden, &attention, None)
    }
}
