//! The five special tokens the diffusion model needs, discovered — never hard-coded —
//! from the tokenizer and its side files:
//!
//! - `bos`/`eos`: what the post-processor puts around a sequence (`<s> … </s>` for XLM-R,
//!   `[CLS] … [SEP]` for BERT), else `bos_token`/`cls_token` and `sep_token`/`eos_token`
//!   of `special_tokens_map.json`/`tokenizer_config.json` (LLaDA names both a `bos_token`
//!   and an unrelated `[CLS]`), else `config.json`'s `bos_token_id`/`eos_token_id`, else
//!   the conventional texts;
//! - `pad`, `mask`, `unk`: the side files' `pad_token`, `mask_token`, `unk_token`, else
//!   `config.json`'s `pad_token_id` / `mask_token_id` (LLaDA's `<|mdm_mask|>` is named
//!   only there), else the conventional texts (`<pad>`/`[PAD]`, `<mask>`/`[MASK]`,
//!   `<|mdm_mask|>`/`<|mask|>`, `<unk>`/`[UNK]`) when the tokenizer knows them. Byte-level
//!   BPE tokenizers (LLaDA, Dream) have no unknown token: `unk` is then the end-of-text id
//!   (`eos`), which only vocabulary pruning's remapping of unkept ids would use.
//!
//! The pad id must agree with `config.json`'s `pad_token_id` when both exist: XLM-R and
//! RoBERTa derive position ids from it (SPEC §1), so a disagreement is an error.

use serde::{Deserialize, Serialize};

use crate::tokenizer::hf_files::HfFiles;
use crate::{DataError, Tokenizer};

/// Ids of the special tokens (XLM-R: bos 0, pad 1, eos 2, unk 3, mask 250001;
/// BERT uncased: pad 0, unk 100, bos=`[CLS]` 101, eos=`[SEP]` 102, mask 103).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialTokens {
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub mask: u32,
    pub unk: u32,
}

impl SpecialTokens {
    /// Discovers the special tokens of `tok` (see the module documentation). A missing one
    /// is an error naming the directory and where it was looked for.
    pub fn discover(tok: &Tokenizer) -> Result<Self, DataError> {
        let files = HfFiles::read(tok.dir())?;
        let by_name = |key: &str| files.token_name(key).and_then(|t| tok.token_to_id(&t));
        let by_text = |texts: &[&str]| texts.iter().find_map(|t| tok.token_to_id(t));
        let missing = |role: &'static str, looked: &str| DataError::MissingSpecialToken {
            role,
            dir: tok.dir().to_path_buf(),
            looked: looked.to_owned(),
        };

        // What the post-processor wraps an empty text in: exactly [bos, eos] when it has a
        // single-sequence template with one token on each side.
        let wrapped = tok.encode("", true)?;
        let (tmpl_bos, tmpl_eos) = match wrapped[..] {
            [b, e] => (Some(b), Some(e)),
            _ => (None, None),
        };

        let bos = tmpl_bos
            .or_else(|| by_name("bos_token"))
            .or_else(|| by_name("cls_token"))
            .or_else(|| files.config_id("bos_token_id"))
            .or_else(|| by_text(&["<s>", "[CLS]"]))
            .ok_or_else(|| {
                missing(
                    "bos",
                    "the post-processor, bos_token/cls_token, config.json bos_token_id, <s>/[CLS]",
                )
            })?;
        let eos = tmpl_eos
            .or_else(|| by_name("sep_token"))
            .or_else(|| by_name("eos_token"))
            .or_else(|| files.config_id("eos_token_id"))
            .or_else(|| by_text(&["</s>", "[SEP]"]))
            .ok_or_else(|| {
                missing(
                    "eos",
                    "the post-processor, sep_token/eos_token, config.json eos_token_id, </s>/[SEP]",
                )
            })?;
        let config_pad = files.config_id("pad_token_id");
        let tokenizer_pad = by_name("pad_token").or_else(|| by_text(&["<pad>", "[PAD]"]));
        if let (Some(t), Some(c)) = (tokenizer_pad, config_pad)
            && t != c
        {
            return Err(DataError::SpecialTokenConflict {
                role: "pad",
                dir: tok.dir().to_path_buf(),
                tokenizer_id: t,
                config_id: c,
            });
        }
        let pad = tokenizer_pad
            .or(config_pad)
            .ok_or_else(|| missing("pad", "pad_token, config.json pad_token_id, <pad>/[PAD]"))?;
        let mask = by_name("mask_token")
            .or_else(|| files.config_id("mask_token_id"))
            .or_else(|| by_text(&["<mask>", "[MASK]", "<|mdm_mask|>", "<|mask|>"]))
            .ok_or_else(|| missing("mask", "mask_token, config.json mask_token_id, <mask>/[MASK]/<|mdm_mask|>/<|mask|>"))?;
        let byte_level = tok.token_to_id("Ġ").is_some() || tok.token_to_id("Ċ").is_some();
        let unk = by_name("unk_token")
            .or_else(|| by_text(&["<unk>", "[UNK]"]))
            .or(byte_level.then_some(eos))
            .ok_or_else(|| missing("unk", "unk_token, <unk>/[UNK] (a byte-level BPE vocabulary needs none)"))?;
        Ok(SpecialTokens {
            bos,
            eos,
            pad,
            mask,
            unk,
        })
    }

    /// Whether `id` is one of the five.
    pub fn contains(&self, id: u32) -> bool {
        [self.bos, self.eos, self.pad, self.mask, self.unk].contains(&id)
    }
}
