//! The MLM head (SPEC §1): dense → activation → LayerNorm → decoder with bias. The decoder
//! weight is the word-embedding matrix when tied (the default) and its own tensor when not
//! (e.g. after vocabulary pruning); the decoder bias always exists. Greedy decoding takes
//! the fused path: the transform as usual, then the decoder reduced block by block to the
//! argmax and log-probability per row (`kernels::vocab_reduce`), never writing the logits.

use crate::config::{Activation, Config, Family};
use crate::dense::Dense;
use crate::error::Result;
use crate::kernels::vocab_reduce;
use crate::names::{self, HeadPart};
use crate::params::ParamBuilder;
use candle_core::Tensor;
use crate::elementwise::Norm;

pub(crate) struct MlmHead {
    dense: Dense,
    norm: Norm,
    decoder: Dense,
    act: Activation,
}

impl MlmHead {
    /// Whether the checkpoint has any head tensor at all.
    pub fn present(pb: &ParamBuilder, family: Family) -> bool {
        pb.has(&names::head(family, HeadPart::DenseWeight).candidates)
    }

    /// Loads the head, tying the decoder to `word` [vocab, hidden] when the config says so.
    pub fn load(pb: &ParamBuilder, family: Family, c: &Config, word: &Tensor) -> Result<MlmHead> {
        let (h, v) = (c.hidden_size, c.vocab_size);
        let get = |part, shape: &[usize]| {
            let n = names::head(family, part);
            pb.load(&n.canonical, &n.candidates, shape)
        };
        let layer = |w, b| Dense::for_model(w, b, pb.trainable);
        let dense = layer(get(HeadPart::DenseWeight, &[h, h])?, get(HeadPart::DenseBias, &[h])?);
        let norm = Norm::new(get(HeadPart::NormWeight, &[h])?, get(HeadPart::NormBias, &[h])?, c.layer_norm_eps);
        let weight = if c.tie_word_embeddings { word.clone() } else { get(HeadPart::DecoderWeight, &[v, h])? };
        let decoder = layer(weight, get(HeadPart::DecoderBias, &[v])?);
        Ok(MlmHead { dense, norm, decoder, act: head_activation(family, c) })
    }

    /// `hidden`: [..., hidden] → logits [..., vocab]
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.decoder.forward(&self.transform(hidden)?)?)
    }

    /// `hidden`: [rows, hidden] → per row `(argmax, log p)` of the log-softmax of the
    /// logits with the id `excluded` forbidden (CPU, f32 or bf16).
    pub fn project_argmax(&self, hidden: &Tensor, excluded: u32) -> Result<Vec<(u32, f32)>> {
        let x = self.transform(hidden)?; // [rows, hidden]
        Ok(vocab_reduce::project_argmax(&x, self.decoder.weight(), self.decoder.bias(), excluded, self.decoder.prepacked())?)
    }

    /// dense → activation → LayerNorm: [..., hidden] → [..., hidden]
    fn transform(&self, hidden: &Tensor) -> Result<Tensor> {
        let x = self.dense.forward_act(self.act, hidden)?; // [..., hidden]
        Ok(self.norm.forward(&x)?)
    }
}

/// BERT's head transform uses `hidden_act`; RoBERTa's `lm_head` always uses exact GELU.
fn head_activation(family: Family, c: &Config) -> Activation {
    match family {
        Family::Bert => c.hidden_act,
        Family::Roberta | Family::XlmRoberta | Family::ModernBert | Family::Llada | Family::Dream => Activation::Gelu,
    }
}
