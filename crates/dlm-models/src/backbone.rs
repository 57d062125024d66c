//! A masked language model of any supported family (BERT, RoBERTa, XLM-R, ModernBERT):
//! config + body + MLM head (`network`), implementing [`MaskedLm`]. `Backbone::load` reads a local HuggingFace directory (`config.json` and
//! safetensors or `pytorch_model.bin` weights) in f32 or bf16, optionally as trainable
//! variables; `init_random` builds the same architecture from scratch (the paper's
//! "without pretraining" baseline); `prune_vocab` keeps only some vocabulary rows
//! (SPEC §6); `save` writes a directory `transformers` loads.

use crate::config::{Config, Family};
use crate::dropout::Dropout;
use crate::error::{ModelError, Result};
use crate::kv_cache::CachedRow;
use crate::masked_lm::{Argmax, MaskedLm, composed_project_argmax, padded_encode_rows, serial_encode_cached_rows};
use crate::names::{self, HeadPart};
use crate::network::{Arch, Body, Head, Pass};
use crate::params::{Init, ParamBuilder, Params};
use crate::weights::Weights;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How to load a checkpoint.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Compute dtype: F32 or BF16.
    pub dtype: DType,
    pub device: Device,
    /// Register parameters as `Var`s so they collect gradients.
    pub trainable: bool,
    /// Causal (left-to-right) attention, for the autoregressive baseline.
    pub causal: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { dtype: DType::F32, device: Device::Cpu, trainable: false, causal: false }
    }
}

/// Parameter counts as the paper reports them (non-embedding = everything but the word,
/// position and token-type embeddings and the untied decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ParamCounts {
    pub total: usize,
    pub embedding: usize,
    pub non_embedding: usize,
}

pub struct Backbone {
    config: Config,
    family: Family,
    dir: PathBuf,
    body: Body,
    head: Head,
    params: Params,
    fresh_head: bool,
    stored_dtype: Option<String>,
    dropout: Dropout,
    opts: LoadOptions,
}

impl Backbone {
    /// Loads `dir/config.json` and the weights in `dir`.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Backbone> {
        let config = Config::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir)?;
        Self::build(dir, config, Some(&weights), opts, 0)
    }

    /// A model of `config` from tensors in memory under HF names (e.g. converted from
    /// another checkpoint layout); `dir` names the source in errors. Shapes are checked as
    /// for a checkpoint on disk.
    pub fn from_tensors(dir: &Path, config: Config, tensors: HashMap<String, Tensor>, opts: &LoadOptions) -> Result<Backbone> {
        let weights = Weights::from_tensors(dir, tensors);
        Self::build(dir, config, Some(&weights), opts, 0)
    }

    /// The architecture of `dir/config.json` with fresh weights, initialised as
    /// `transformers` does, from a seeded RNG.
    pub fn init_random(dir: &Path, opts: &LoadOptions, seed: u64) -> Result<Backbone> {
        let config = Config::from_file(&dir.join("config.json"))?;
        Self::build(dir, config, None, opts, seed)
    }

    fn build(dir: &Path, config: Config, weights: Option<&Weights>, opts: &LoadOptions, seed: u64) -> Result<Backbone> {
        if !matches!(opts.dtype, DType::F32 | DType::BF16) {
            return Err(ModelError::Invalid {
                path: dir.into(),
                message: format!("compute dtype {:?} is not supported (expected f32 or bf16)", opts.dtype),
            });
        }
        let config_path = dir.join("config.json");
        let family = config.family(&config_path)?;
        let arch = Arch::of(&config, &config_path)?;
        let std = config.extra.get("initializer_range").and_then(|x| x.as_f64()).unwrap_or(0.02);
        let init = Init::new(seed, std, config.pad_id());
        let init = match &arch {
            Arch::ModernBert(m) => init.truncated(Some(m.init_cutoff())),
            Arch::Bert(_) | Arch::Llama(_) => init,
        };
        let pb = ParamBuilder::new(weights, init, opts.dtype, opts.device.clone(), opts.trainable);
        let body = Body::load(&pb, &arch, &config)?;
        // Only a loaded checkpoint can lack a head; a random model is fresh throughout.
        let fresh_head = weights.is_some() && !Head::present(&pb, &arch, &config);
        if fresh_head {
            tracing::warn!(
                "{}: checkpoint has no MLM head; initialising a fresh one (train before use)",
                dir.display()
            );
            pb.initialise_from_here();
        }
        let head = Head::load(&pb, &arch, &config, body.word())?;
        let word_name = names::encoder(family, family.word_embeddings());
        let stored_dtype = weights
            .and_then(|w| w.find(&word_name.candidates).and_then(|n| w.dtype_of(n)))
            .map(String::from);
        Ok(Backbone {
            config,
            family,
            dir: dir.into(),
            body,
            head,
            params: pb.finish(),
            fresh_head,
            stored_dtype,
            dropout: Dropout::default(),
            opts: opts.clone(),
        })
    }

    /// A copy keeping only the vocabulary ids `keep`, in that order (SPEC §6): the rows of
    /// the word embeddings, of the decoder weight and of the decoder bias (if the model has
    /// one) are copied into smaller, untied layers. The padding id must keep its index
    /// (`keep[pad] == pad`) so that RoBERTa-style position ids are unchanged (and the
    /// config's `pad_token_id` stays right for every family).
    pub fn prune_vocab(&self, keep: &[u32]) -> Result<Backbone> {
        let invalid = |message: String| ModelError::Invalid { path: self.dir.clone(), message };
        if matches!(self.family, Family::Llada | Family::Dream) {
            return Err(invalid(format!("vocabulary pruning is not supported for {}", self.config.model_type)));
        }
        let vocab = self.config.vocab_size;
        let mut seen = vec![false; vocab];
        for &id in keep {
            let slot = seen.get_mut(id as usize).ok_or_else(|| invalid(format!("cannot keep id {id}: vocabulary has {vocab}")))?;
            if std::mem::replace(slot, true) {
                return Err(invalid(format!("id {id} is kept twice")));
            }
        }
        let pad = self.config.pad_id();
        if keep.get(pad as usize) != Some(&pad) {
            return Err(invalid(format!("the padding id {pad} must keep its index when pruning the vocabulary")));
        }
        let index = Tensor::new(keep, &self.opts.device)?;
        let rows = |t: &Tensor| t.index_select(&index, 0);
        let mut tensors: HashMap<String, Tensor> = self.params.tensors().iter().cloned().collect();
        let word = names::encoder(self.family, self.family.word_embeddings()).canonical;
        let decoder = names::head(self.family, HeadPart::DecoderWeight).canonical;
        let bias = names::head(self.family, HeadPart::DecoderBias).canonical;
        let decoder_weight = tensors.get(&decoder).unwrap_or(self.body.word());
        let pruned_decoder = rows(decoder_weight)?;
        tensors.insert(word.clone(), rows(self.body.word())?);
        tensors.insert(decoder, pruned_decoder);
        if let Some(b) = tensors.get(&bias) {
            let pruned_bias = rows(b)?;
            tensors.insert(bias, pruned_bias);
        }
        let mut config = self.config.clone();
        config.vocab_size = keep.len();
        config.tie_word_embeddings = false;
        Self::from_tensors(&self.dir, config, tensors, &self.opts)
    }

    /// Writes `config.json` and `model.safetensors` (f32, HF tensor names, the decoder bias
    /// under both of its names) into `dir`, each through a temporary file and a rename.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ModelError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut tensors: HashMap<String, Tensor> = self
            .params
            .tensors()
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.to_dtype(DType::F32)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let bias = names::head(self.family, HeadPart::DecoderBias).canonical;
        if let (Some(alias), Some(b)) = (names::decoder_bias_alias(self.family), tensors.get(&bias).cloned()) {
            tensors.insert(alias.to_string(), b);
        }
        let weights = dir.join("model.safetensors");
        let tmp = dir.join("model.safetensors.tmp");
        candle_core::safetensors::save(&tensors, &tmp).map_err(|e| ModelError::Invalid {
            path: tmp.clone(),
            message: format!("cannot write weights: {e}"),
        })?;
        std::fs::rename(&tmp, &weights).map_err(io(&weights))?;
        let config = dir.join("config.json");
        let tmp = dir.join("config.json.tmp");
        let text = self
            .config
            .to_json()
            .and_then(|v| serde_json::to_string_pretty(&v))
            .map_err(|e| ModelError::Config { path: config.clone(), message: e.to_string() })?;
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &config).map_err(io(&config))
    }

    /// `Some(seed)`: dropout on (training), masks from an RNG seeded with `seed`; `None`:
    /// dropout off (evaluation, the default).
    pub fn set_dropout(&self, seed: Option<u64>) {
        self.dropout.set_seed(seed);
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn family(&self) -> Family {
        self.family
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// True when the checkpoint had no MLM head and a fresh one was initialised.
    pub fn fresh_head(&self) -> bool {
        self.fresh_head
    }
    /// The dtype the word embeddings are stored in on disk (e.g. "F32").
    pub fn stored_dtype(&self) -> Option<&str> {
        self.stored_dtype.as_deref()
    }

    pub fn parameter_counts(&self) -> ParamCounts {
        let embedding = self
            .params
            .tensors()
            .iter()
            .filter(|(n, _)| {
                n.contains("embeddings.")
                    || n.ends_with("decoder.weight")
                    || n.ends_with(self.family.word_embeddings())
                    || matches!(n.as_str(), "lm_head.weight" | "model.transformer.ff_out.weight")
            })
            .map(|(_, t)| t.elem_count())
            .sum();
        let total = self.params.count();
        ParamCounts { total, embedding, non_embedding: total - embedding }
    }

    fn check_input(&self, ids: &Tensor, mask: &Tensor) -> Result<()> {
        let (b, s) = ids.dims2()?;
        if mask.dims() != [b, s] {
            return Err(ModelError::Invalid {
                path: self.dir.clone(),
                message: format!("attention mask has shape {:?}, expected {:?}", mask.dims(), [b, s]),
            });
        }
        let largest = if b * s > 0 { Some(ids.flatten_all()?.max(0)?.to_scalar::<u32>()?) } else { None };
        self.check_sequence(s, largest)
    }

    /// A sequence of `len` ids whose largest is `largest` fits the position embeddings
    /// and the vocabulary.
    fn check_sequence(&self, len: usize, largest: Option<u32>) -> Result<()> {
        let max = self.config.max_sequence_length();
        if len > max {
            return Err(ModelError::TooLong { found: len, max });
        }
        match largest {
            Some(id) if id as usize >= self.config.vocab_size => Err(ModelError::Invalid {
                path: self.dir.clone(),
                message: format!("token id {id} is outside the vocabulary of {} ids", self.config.vocab_size),
            }),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backbone")
            .field("dir", &self.dir)
            .field("model_type", &self.config.model_type)
            .field("layers", &self.config.num_hidden_layers)
            .field("hidden_size", &self.config.hidden_size)
            .field("vocab_size", &self.config.vocab_size)
            .field("dtype", &self.opts.dtype)
            .finish()
    }
}

impl MaskedLm for Backbone {
    fn encode(&self, ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        self.check_input(ids, attention_mask)?;
        let pass = Pass { mask: attention_mask, dtype: self.opts.dtype, causal: self.opts.causal, drop: &self.dropout };
        self.body.forward(ids, &pass) // [b, s, h]
    }

    /// On the CPU (BERT family, bidirectional), packed: no product runs on padding rows.
    fn encode_rows(&self, rows: &[&[u32]], pad: u32) -> Result<Tensor> {
        for row in rows {
            self.check_sequence(row.len(), row.iter().copied().max())?;
        }
        let packed = if self.opts.device.is_cpu() && !self.opts.causal && !rows.is_empty() {
            self.body.forward_rows(rows, pad, self.opts.dtype, &self.dropout, &self.opts.device)?
        } else {
            None
        };
        match packed {
            Some(hidden) => Ok(hidden),
            None => padded_encode_rows(self, rows, pad),
        }
    }

    /// LLaDA, Dream, the BERT family and ModernBERT (bidirectional); causal mode is
    /// refused, naming the model type.
    fn encode_cached(&self, ids: &[u32], pad: u32, fresh: &[std::ops::Range<usize>], cache: &mut crate::KvCache) -> Result<Tensor> {
        self.check_sequence(ids.len(), ids.iter().copied().max())?;
        let (dtype, device) = (self.opts.dtype, &self.opts.device);
        match &self.body {
            // LLaDA and Dream attend to every id, `pad` included (see `llama`).
            Body::Llama(_) | Body::Bert { .. } if !self.opts.causal => self.encode_cached_rows(&mut [CachedRow { ids, fresh, cache }], pad),
            Body::ModernBert(e) if !self.opts.causal => e.forward_cached(ids, pad, fresh, cache, dtype, &self.dropout, device),
            _ => Err(ModelError::Unsupported(format!(
                "{}: model_type {:?}{} has no cached forward: KV caches (prefix, dual, refresh) are implemented for LLaDA, Dream, \
                 ModernBERT and the BERT family (bert, roberta, camembert, xlm-roberta) without causal attention",
                self.dir.display(),
                self.config.model_type,
                if self.opts.causal { " with causal attention" } else { "" }
            ))),
        }
    }

    /// The BERT family, LLaDA and Dream (bidirectional) packed: the dense products run once
    /// over every row's fresh positions. ModernBERT row by row.
    fn encode_cached_rows(&self, rows: &mut [CachedRow<'_>], pad: u32) -> Result<Tensor> {
        let packed = !self.opts.causal && !rows.is_empty() && matches!(self.body, Body::Bert { .. } | Body::Llama(_));
        if packed {
            for row in rows.iter() {
                self.check_sequence(row.ids.len(), row.ids.iter().copied().max())?;
            }
        }
        let (dtype, device) = (self.opts.dtype, &self.opts.device);
        match &self.body {
            Body::Bert { embeddings, layers } if packed => {
                crate::encoder::forward_cached(embeddings, layers, rows, pad, dtype, &self.dropout, device)
            }
            // LLaDA and Dream attend to every id, `pad` included (see `llama`).
            Body::Llama(e) if packed => e.forward_cached(rows, dtype, device),
            _ => serial_encode_cached_rows(self, rows, pad),
        }
    }

    /// Keys and values of every layer in the compute dtype (`llama::Encoder::kv_width`
    /// wide for LLaDA and Dream, `hidden_size` for the BERT family and ModernBERT).
    fn kv_cache_bytes(&self, len: usize) -> Option<usize> {
        let width = match &self.body {
            _ if self.opts.causal => return None,
            Body::Llama(e) => e.kv_width(),
            Body::Bert { .. } | Body::ModernBert(_) => self.config.hidden_size,
        };
        Some(2 * self.config.num_hidden_layers * len * width * self.opts.dtype.size_in_bytes())
    }

    fn project(&self, hidden: &Tensor) -> Result<Tensor> {
        self.head.forward(hidden)
    }

    /// On the CPU, the fused head (`kernels::vocab_reduce`): no `[rows, vocab]` logits.
    fn project_argmax(&self, hidden: &Tensor, excluded: u32) -> Result<Vec<Argmax>> {
        let fused = if self.opts.device.is_cpu() { self.head.project_argmax(hidden, excluded)? } else { None };
        match fused {
            Some(best) => Ok(best.into_iter().map(|(token, logp)| Argmax { token, logp }).collect()),
            None => composed_project_argmax(self, hidden, excluded),
        }
    }

    fn closes_canvas_with_eos(&self) -> bool {
        !matches!(self.family, Family::Llada | Family::Dream)
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }
    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
    fn max_sequence_length(&self) -> usize {
        self.config.max_sequence_length()
    }
    fn device(&self) -> &Device {
        &self.opts.device
    }
    fn dtype(&self) -> DType {
        self.opts.dtype
    }
}
