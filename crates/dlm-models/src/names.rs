//! HuggingFace tensor names. A parameter is registered under the name HF's `*ForMaskedLM`
//! uses for the family (so saved checkpoints load in `transformers`), and looked up under
//! every name real checkpoints use: with or without the `bert.`/`roberta.`/`model.` prefix,
//! and with the legacy LayerNorm names `gamma`/`beta`.

use crate::config::Family;

/// One parameter: the name it is saved under and the names it may be found under.
pub(crate) struct Name {
    pub canonical: String,
    pub candidates: Vec<String>,
}

/// Adds the legacy TF-era spelling of LayerNorm parameters after each candidate.
fn with_legacy(names: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(names.len() * 2);
    for n in names {
        let legacy = if n.contains("LayerNorm") || n.contains("layer_norm") {
            n.strip_suffix(".weight")
                .map(|s| format!("{s}.gamma"))
                .or_else(|| n.strip_suffix(".bias").map(|s| format!("{s}.beta")))
        } else {
            None
        };
        out.push(n);
        out.extend(legacy);
    }
    out
}

/// An encoder tensor (`embeddings.*`, `encoder.layer.N.*`).
pub(crate) fn encoder(family: Family, name: &str) -> Name {
    let own = family.prefix();
    let mut candidates = vec![format!("{own}.{name}"), name.to_string()];
    for other in ["bert", "roberta"] {
        if other != own {
            candidates.push(format!("{other}.{name}"));
        }
    }
    Name { canonical: format!("{own}.{name}"), candidates: with_legacy(candidates) }
}

/// Parts of the MLM head.
#[derive(Clone, Copy)]
pub(crate) enum HeadPart {
    DenseWeight,
    DenseBias,
    NormWeight,
    NormBias,
    DecoderWeight,
    DecoderBias,
}

/// The decoder bias's HF names: the head's `*.bias`, then its alias `*.decoder.bias` (one
/// parameter under two names in BERT and RoBERTa heads).
const BERT_DECODER_BIAS: [&str; 2] = ["cls.predictions.bias", "cls.predictions.decoder.bias"];
const ROBERTA_DECODER_BIAS: [&str; 2] = ["lm_head.bias", "lm_head.decoder.bias"];

/// A head tensor: BERT's `cls.predictions.*` or RoBERTa's `lm_head.*`, either accepted;
/// ModernBERT's `head.*` and `decoder.*`.
pub(crate) fn head(family: Family, part: HeadPart) -> Name {
    if family == Family::ModernBert {
        let name = match part {
            HeadPart::DenseWeight => "head.dense.weight",
            HeadPart::DenseBias => "head.dense.bias",
            HeadPart::NormWeight => "head.norm.weight",
            HeadPart::NormBias => "head.norm.bias",
            HeadPart::DecoderWeight => "decoder.weight",
            HeadPart::DecoderBias => "decoder.bias",
        };
        return Name { canonical: name.into(), candidates: vec![name.into()] };
    }
    let (bert, roberta): (&[&str], &[&str]) = match part {
        HeadPart::DenseWeight => (&["cls.predictions.transform.dense.weight"], &["lm_head.dense.weight"]),
        HeadPart::DenseBias => (&["cls.predictions.transform.dense.bias"], &["lm_head.dense.bias"]),
        HeadPart::NormWeight => (&["cls.predictions.transform.LayerNorm.weight"], &["lm_head.layer_norm.weight"]),
        HeadPart::NormBias => (&["cls.predictions.transform.LayerNorm.bias"], &["lm_head.layer_norm.bias"]),
        HeadPart::DecoderWeight => (&["cls.predictions.decoder.weight"], &["lm_head.decoder.weight"]),
        HeadPart::DecoderBias => (&BERT_DECODER_BIAS, &ROBERTA_DECODER_BIAS),
    };
    let (own, other) = match family {
        Family::Bert => (bert, roberta),
        Family::Roberta | Family::XlmRoberta | Family::ModernBert | Family::Llada | Family::Dream => (roberta, bert),
    };
    let candidates: Vec<String> = own.iter().chain(other).map(|s| s.to_string()).collect();
    Name { canonical: candidates[0].clone(), candidates: with_legacy(candidates) }
}

/// The decoder bias's second HF name, `*.decoder.bias`; `None` for ModernBERT (one name).
/// transformers ≥ 5 fills it from `*.bias` only when the word embeddings are tied, so saved
/// checkpoints carry it as well.
pub(crate) fn decoder_bias_alias(family: Family) -> Option<&'static str> {
    match family {
        Family::Bert => Some(BERT_DECODER_BIAS[1]),
        Family::Roberta | Family::XlmRoberta => Some(ROBERTA_DECODER_BIAS[1]),
        Family::ModernBert | Family::Llada | Family::Dream => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_candidates_include_prefixes_and_legacy_names() {
        let n = encoder(Family::Bert, "embeddings.LayerNorm.weight");
        assert_eq!(n.canonical, "bert.embeddings.LayerNorm.weight");
        assert_eq!(
            n.candidates,
            [
                "bert.embeddings.LayerNorm.weight",
                "bert.embeddings.LayerNorm.gamma",
                "embeddings.LayerNorm.weight",
                "embeddings.LayerNorm.gamma",
                "roberta.embeddings.LayerNorm.weight",
                "roberta.embeddings.LayerNorm.gamma",
            ]
        );
    }

    #[test]
    fn roberta_head_prefers_lm_head() {
        let n = head(Family::XlmRoberta, HeadPart::DecoderBias);
        assert_eq!(n.canonical, "lm_head.bias");
        assert!(n.candidates.contains(&"cls.predictions.bias".to_string()));
    }
}
