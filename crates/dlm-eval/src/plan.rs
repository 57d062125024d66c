//! Which examples are run: the first `--limit` of each subset, tokenized once, minus
//! those whose SPEC §2 sequence `<s> prompt response </s>` (`len(src)-1 + len(tgt)-1`
//! tokens, `dlm_data::formatted_len`, the rule `dlm data stats` counts with) is longer
//! than the model maximum; those are skipped and counted per subset (SPEC §8).
//!
//! Prompts and responses are encoded as `bos … eos` whatever the tokenizer
//! (`dlm_data::wrap_bos_eos`: LLaDA's and Dream's add no `eos`). With a chat template
//! (`dlm eval --chat`, instruction-tuned LLaDA and Dream) each prompt is rendered as one
//! user message with the assistant's turn opened and tokenized without added special
//! tokens, as their own evaluation scripts do.

use dlm_data::{ChatMessage, ChatTemplate, Tokenizer, chat_prefix, formatted_len, wrap_bos_eos};

use crate::error::Result;
use crate::example::Dataset;

/// One example that will be generated and scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedExample {
    /// Index of its subset in the dataset.
    pub subset: usize,
    /// Index of the example in its subset.
    pub index: usize,
    /// `<s> prompt </s>`.
    pub src: Vec<u32>,
    /// `<s> response </s>`.
    pub tgt: Vec<u32>,
}

/// Per subset: examples considered (after `--limit`) and how many were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubsetCount {
    pub examples: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub items: Vec<PlannedExample>,
    pub counts: Vec<SubsetCount>,
    pub max_length: usize,
}

/// Tokenizes the first `limit` examples of every subset and drops the over-long ones.
pub fn plan(
    dataset: &Dataset,
    tokenizer: &Tokenizer,
    chat: Option<&ChatTemplate>,
    max_length: usize,
    limit: Option<usize>,
) -> Result<Plan> {
    let special = tokenizer.special_tokens()?;
    let mut items = Vec::new();
    let mut counts = Vec::with_capacity(dataset.subsets.len());
    for (s, subset) in dataset.subsets.iter().enumerate() {
        let take = limit.unwrap_or(usize::MAX).min(subset.examples.len());
        let examples = &subset.examples[..take];
        let prompts: Vec<&str> = examples.iter().map(|e| e.prompt.as_str()).collect();
        let targets: Vec<&str> = examples.iter().map(|e| e.target.as_str()).collect();
        let src: Vec<Vec<u32>> = match chat {
            Some(template) => prompts
                .iter()
                .map(|p| chat_prefix(tokenizer, &template.render(&[ChatMessage::user(*p)], true)?))
                .collect::<std::result::Result<_, _>>()?,
            None => tokenizer.encode_batch(&prompts, true)?,
        };
        let src: Vec<Vec<u32>> = src.into_iter().map(|ids| wrap_bos_eos(ids, &special)).collect();
        let tgt: Vec<Vec<u32>> =
            tokenizer.encode_batch(&targets, true)?.into_iter().map(|ids| wrap_bos_eos(ids, &special)).collect();
        let mut count = SubsetCount {
            examples: take,
            skipped: 0,
        };
        for (index, (src, tgt)) in src.into_iter().zip(tgt).enumerate() {
            if formatted_len(src.len(), tgt.len()) > max_length {
                count.skipped += 1;
            } else {
                items.push(PlannedExample {
                    subset: s,
                    index,
                    src,
                    tgt,
                });
            }
        }
        counts.push(count);
    }
    Ok(Plan {
        items,
        counts,
        max_length,
    })
}
