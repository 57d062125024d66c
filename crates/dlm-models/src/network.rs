//! The network behind a [`crate::Backbone`], per architecture: the body (ids → final
//! hidden states) and the MLM head (hidden states → logits). BERT, RoBERTa and XLM-R share
//! the post-LN encoder of `encoder` and the head of `head`; ModernBERT has its own
//! (`modernbert`); LLaDA and Dream share the bidirectional Llama of `llama`.

use crate::config::{Config, Family};
use crate::dropout::Dropout;
use crate::elementwise::Keys;
use crate::encoder::{Embeddings, Layer, attention_bias};
use crate::error::Result;
use crate::head::MlmHead;
use crate::llama::{self, LlamaConfig};
use crate::modernbert::{self, ModernBertConfig};
use crate::names;
use crate::params::ParamBuilder;
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// A family with the fields of its own that its network reads.
pub(crate) enum Arch {
    Bert(Family),
    ModernBert(ModernBertConfig),
    /// LLaDA or Dream.
    Llama(LlamaConfig),
}

impl Arch {
    /// The architecture `config` (read from `config_path`) selects.
    pub fn of(config: &Config, config_path: &Path) -> Result<Arch> {
        Ok(match config.family(config_path)? {
            Family::ModernBert => {
                Arch::ModernBert(ModernBertConfig::from_config(config, config_path)?)
            }
            Family::Llada => Arch::Llama(crate::llada::config(config, config_path)?),
            Family::Dream => Arch::Llama(crate::dream::config(config, config_path)?),
            family => Arch::Bert(family),
        })
    }
}

/// What a forward pass needs besides the ids.
pub(crate) struct Pass<'a> {
    /// [batch, seq], 1 for tokens, 0 for padding.
    pub mask: &'a Tensor,
    pub dtype: DType,
    pub causal: bool,
    pub drop: &'a Dropout,
}

pub(crate) enum Body {
    Bert {
        embeddings: Embeddings,
        layers: Vec<Layer>,
    },
    ModernBert(modernbert::Encoder),
    Llama(llama::Encoder),
}

impl Body {
    pub fn load(pb: &ParamBuilder, arch: &Arch, config: &Config) -> Result<Body> {
        Ok(match arch {
            Arch::ModernBert(m) => Body::ModernBert(modernbert::Encoder::load(pb, config, m)?),
            Arch::Llama(m) => Body::Llama(llama::Encoder::load(pb, config, m)?),
            &Arch::Bert(family) => Body::Bert {
                embeddings: Embeddings::load(pb, family, config)?,
                layers: (0..config.num_hidden_layers)
                    .map(|i| Layer::load(pb, family, config, i))
                    .collect::<Result<Vec<_>>>()?,
            },
        })
    }

    /// The word-embedding matrix [vocab, hidden].
    pub fn word(&self) -> &Tensor {
        match self {
            Body::Bert { embeddings, .. } => &embeddings.word,
            Body::ModernBert(e) => &e.word,
            Body::Llama(e) => &e.word,
        }
    }

    /// `ids`: [batch, seq] → final hidden states [batch, seq, hidden].
    pub fn forward(&self, ids: &Tensor, pass: &Pass) -> Result<Tensor> {
        match self {
            Body::Bert { embeddings, layers } => {
                let keys = Keys::Padded(attention_bias(pass.mask, pass.dtype, pass.causal, None)?); // [b, 1, 1|s, s]
                let x = embeddings.forward(ids, pass.drop)?; // [b, s, h]
                layers.iter().try_fold(x, |x, layer| layer.forward(&x, &keys, pass.drop))
            }
            Body::ModernBert(e) => e.forward(ids, pass),
            Body::Llama(e) => e.forward(ids, pass.mask, pass.dtype),
        }
    }

    /// Sequences packed end to end without padding (see [`crate::MaskedLm::encode_rows`]):
    /// `rows` → [Σ len, hidden]; `None` for a body without a packed path (ModernBERT).
    /// LLaDA and Dream attend to every id, `pad` included (see `llama`).
    pub fn forward_rows(&self, rows: &[&[u32]], pad: u32, dtype: DType, drop: &Dropout, device: &Device) -> Result<Option<Tensor>> {
        let (embeddings, layers) = match self {
            Body::Bert { embeddings, layers } => (embeddings, layers),
            Body::Llama(e) => return e.forward_rows(rows, dtype, device).map(Some),
            Body::ModernBert(_) => return Ok(None),
        };
        let flat: Vec<u32> = rows.concat();
        let total = flat.len();
        let real: Vec<u32> = flat.iter().map(|&id| u32::from(id != pad)).collect();
        let bias = attention_bias(&Tensor::from_vec(real, (1, total), device)?, dtype, false, None)?.reshape(total)?; // [Σ len]
        let keys = Keys::Packed { bias, lengths: rows.iter().map(|r| r.len()).collect() };
        let x = embeddings.forward_rows(&Tensor::from_vec(flat, total, device)?, rows, drop)?; // [Σ len, h]
        Ok(Some(layers.iter().try_fold(x, |x, layer| layer.forward(&x, &keys, drop))?))
    }
}

pub(crate) enum Head {
    Bert(MlmHead),
    ModernBert(modernbert::Head),
    Llama(llama::Head),
}

impl Head {
    /// Whether the checkpoint holds this architecture's head (a tied LLaDA/Dream
    /// projection is the embeddings themselves).
    pub fn present(pb: &ParamBuilder, arch: &Arch, config: &Config) -> bool {
        match arch {
            &Arch::Bert(family) => MlmHead::present(pb, family),
            Arch::ModernBert(_) => pb.has(&names::head(Family::ModernBert, names::HeadPart::DenseWeight).candidates),
            Arch::Llama(m) => config.tie_word_embeddings || pb.has(&[m.tensor(llama::Part::LmHead, 0, "weight")]),
        }
    }

    /// Loads the head, tying its decoder to `word` when the config says so.
    pub fn load(pb: &ParamBuilder, arch: &Arch, config: &Config, word: &Tensor) -> Result<Head> {
        Ok(match arch {
            Arch::ModernBert(m) => Head::ModernBert(modernbert::Head::load(pb, config, m, word)?),
            Arch::Llama(m) => Head::Llama(llama::Head::load(pb, config, m, word)?),
            &Arch::Bert(family) => Head::Bert(MlmHead::load(pb, family, config, word)?),
        })
    }

    /// `hidden`: [..., hidden] → logits [..., vocab]
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        match self {
            Head::Bert(h) => h.forward(hidden),
            Head::ModernBert(h) => h.forward(hidden),
            Head::Llama(h) => h.forward(hidden),
        }
    }

    /// The fused greedy head (`kernels::vocab_reduce`), where this head has one:
    /// `hidden` [rows, hidden] → (token, log p) per row; `None` for heads without it.
    pub fn project_argmax(&self, hidden: &Tensor, excluded: u32) -> Result<Option<Vec<(u32, f32)>>> {
        match self {
            Head::Bert(h) => Ok(Some(h.project_argmax(hidden, excluded)?)),
            Head::Llama(h) => Ok(Some(h.project_argmax(hidden, excluded)?)),
            Head::ModernBert(_) => Ok(None),
        }
    }
}
