//! The sequence format of SPEC §2 and the generation canvas of SPEC §4, on token ids.
//!
//! Training/scoring sequence, as the reference's `PairDataset` builds it from
//! `src = <s> prompt </s>` and `tgt = <s> response </s>`:
//!
//! ```text
//! tgt' = tgt[-max:]                         (a response longer than max keeps its end)
//! seq  = (src[:-1] + tgt'[1:])[-max:]       (= <s> prompt response </s>, cut from the LEFT)
//! maskable = the last  |tgt'| - [tgt'[0] == <s>]  positions of seq   (response + </s>)
//! fixed    = the rest (<s> and the prompt)
//! ```
//!
//! Whenever `<s> response </s>` fits in `max` the maskable positions are exactly the
//! response tokens and the final `</s>`. (When it does not, `tgt'[0]` is a response token
//! that the reference drops, and the whole row is maskable; this is reproduced, not fixed.)
//!
//! Generation canvas: `<s> prompt <mask>×L </s>` = `src[:-1] + [mask]*L + [eos]`; the `L`
//! masks are the generation positions, everything else is fixed.

use std::ops::Range;

use crate::{DataError, SpecialTokens, Tokenizer};

/// Maximum sequence length of XLM-R/BERT-style models (514 positions − 2), SPEC §1.
pub const DEFAULT_MAX_LENGTH: usize = 512;

/// One formatted sequence: ids and, per position, whether it is fixed (never noised,
/// never scored). Fixed positions always form a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatted {
    pub ids: Vec<u32>,
    pub fixed: Vec<bool>,
}

impl Formatted {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of fixed positions (the prefix `<s> prompt`).
    pub fn n_fixed(&self) -> usize {
        self.fixed.iter().take_while(|f| **f).count()
    }

    /// Number of maskable positions (response and final `</s>`).
    pub fn n_maskable(&self) -> usize {
        self.len() - self.n_fixed()
    }
}

/// Length of `src[:-1] + tgt[1:]` before any truncation: `len(src)-1 + len(tgt)-1`. An
/// example is skipped in zero/few-shot evaluation when this exceeds the maximum (SPEC §8).
pub fn formatted_len(src_len: usize, tgt_len: usize) -> usize {
    src_len.saturating_sub(1) + tgt_len.saturating_sub(1)
}

/// `ids` as `bos … eos`: `bos` and `eos` added where the tokenizer's post-processor did not
/// put them (decoder tokenizers such as LLaDA's and Dream's add at most a leading bos), so
/// that every text is SPEC §2's `<s> text </s>` whatever the tokenizer; BERT-family
/// encodings are left as they are.
pub fn wrap_bos_eos(mut ids: Vec<u32>, special: &SpecialTokens) -> Vec<u32> {
    if ids.first() != Some(&special.bos) {
        ids.insert(0, special.bos);
    }
    if ids.len() < 2 || ids.last() != Some(&special.eos) {
        ids.push(special.eos);
    }
    ids
}

/// Builds the SPEC §2 sequence from `src = <s> prompt </s>` and `tgt = <s> response </s>`
/// (both as `Tokenizer::encode(_, true)` returns them), cut from the left to `max_length`.
pub fn format_pair(
    src: &[u32],
    tgt: &[u32],
    special: &SpecialTokens,
    max_length: usize,
) -> Result<Formatted, DataError> {
    if max_length < 2 {
        return Err(DataError::Format("max_length must be at least 2".into()));
    }
    if src.last() != Some(&special.eos) {
        return Err(DataError::Format(format!(
            "the prompt ids must end with eos {} (encode with special tokens)",
            special.eos
        )));
    }
    if tgt.len() < 2 || tgt[0] != special.bos || tgt.last() != Some(&special.eos) {
        return Err(DataError::Format(format!(
            "the response ids must be bos … eos ({} … {}) (encode with special tokens)",
            special.bos, special.eos
        )));
    }
    let tgt = &tgt[tgt.len().saturating_sub(max_length)..];
    let mut ids: Vec<u32> = Vec::with_capacity(src.len() + tgt.len());
    ids.extend_from_slice(&src[..src.len() - 1]);
    ids.extend_from_slice(&tgt[1..]);
    let cut = ids.len().saturating_sub(max_length);
    ids.drain(..cut);
    let n_response = tgt.len() - usize::from(tgt[0] == special.bos);
    let n_fixed = ids.len().saturating_sub(n_response);
    let fixed = (0..ids.len()).map(|i| i < n_fixed).collect();
    Ok(Formatted { ids, fixed })
}

/// The SPEC §4 canvas for one prompt and one length hypothesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas {
    /// `<s> prompt <mask>×L </s>` (left-truncated prompt if it did not fit).
    pub ids: Vec<u32>,
    /// Position of the first `<mask>`.
    pub gen_start: usize,
    /// `L`, the number of generation positions.
    pub gen_len: usize,
}

impl Canvas {
    /// The generation positions.
    pub fn generation(&self) -> Range<usize> {
        self.gen_start..self.gen_start + self.gen_len
    }

    /// Whether position `i` is a generation position.
    pub fn is_generation(&self, i: usize) -> bool {
        self.generation().contains(&i)
    }
}

/// The canvas prefix of a prompt text: `<s> prompt </s>` encoded, without its `</s>`
/// (`src[:-1]`), ready for `<mask>×L </s>` to follow.
pub fn canvas_prefix(tokenizer: &Tokenizer, prompt: &str, eos: u32) -> Result<Vec<u32>, DataError> {
    let mut src = tokenizer.encode(prompt, true)?;
    if src.last() == Some(&eos) {
        src.pop();
    }
    Ok(src)
}

/// Builds `<s> prompt <mask>×length </s>` from `src = <s> prompt </s>`, cutting the prompt
/// from the left when the canvas would exceed `max_length`. Errors when `length + 1`
/// (masks and `</s>`) alone exceeds `max_length`.
pub fn generation_canvas(
    src: &[u32],
    length: usize,
    special: &SpecialTokens,
    max_length: usize,
) -> Result<Canvas, DataError> {
    if src.last() != Some(&special.eos) {
        return Err(DataError::Format(format!(
            "the prompt ids must end with eos {} (encode with special tokens)",
            special.eos
        )));
    }
    if length + 1 > max_length {
        return Err(DataError::Format(format!(
            "{length} generation positions and </s> do not fit in {max_length} positions"
        )));
    }
    let prompt = &src[..src.len() - 1];
    let keep = prompt.len().min(max_length - length - 1);
    let mut ids = Vec::with_capacity(keep + length + 1);
    ids.extend_from_slice(&prompt[prompt.len() - keep..]);
    ids.extend(std::iter::repeat_n(special.mask, length));
    ids.push(special.eos);
    Ok(Canvas {
        ids,
        gen_start: keep,
        gen_len: length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // XLM-R-like ids: <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=9.
    const SP: SpecialTokens = SpecialTokens {
        bos: 0,
        eos: 2,
        pad: 1,
        mask: 9,
        unk: 3,
    };

    #[test]
    fn concatenates_without_separator() {
        // src = <s> 10 11 </s>, tgt = <s> 20 21 </s>
        // src[:-1] + tgt[1:] = [0 10 11] + [20 21 2] → 6 tokens; 3 fixed, 3 maskable.
        let f = format_pair(&[0, 10, 11, 2], &[0, 20, 21, 2], &SP, 512).unwrap();
        assert_eq!(f.ids, vec![0, 10, 11, 20, 21, 2]);
        assert_eq!(f.fixed, vec![true, true, true, false, false, false]);
        assert_eq!((f.n_fixed(), f.n_maskable()), (3, 3));
        assert_eq!(formatted_len(4, 4), 6); // (4-1) + (4-1)
    }

    #[test]
    fn cuts_from_the_left() {
        // 6 tokens, max 4 → drop the first 2 (<s> 10): [11 20 21 </s>]; the response and
        // </s> are 4-1 = 3 positions, so 4-3 = 1 fixed.
        let f = format_pair(&[0, 10, 11, 2], &[0, 20, 21, 2], &SP, 4).unwrap();
        assert_eq!(f.ids, vec![11, 20, 21, 2]);
        assert_eq!(f.fixed, vec![true, false, false, false]);
    }

    #[test]
    fn over_long_response_follows_the_reference() {
        // max 3 < |tgt| = 4: tgt' = tgt[-3:] = [20 21 </s>]; seq = [0 10 11] + [21 </s>]
        // cut to [11 21 </s>] (20 is lost, as in the reference); tgt'[0] is not <s>, so
        // |tgt'| = 3 positions are maskable: the whole row.
        let f = format_pair(&[0, 10, 11, 2], &[0, 20, 21, 2], &SP, 3).unwrap();
        assert_eq!(f.ids, vec![11, 21, 2]);
        assert_eq!(f.n_fixed(), 0);
        // max 2: tgt' = [21 </s>]; seq = [0 10 11 </s>] cut to [11 </s>], all maskable.
        let f = format_pair(&[0, 10, 11, 2], &[0, 20, 21, 2], &SP, 2).unwrap();
        assert_eq!(f.ids, vec![11, 2]);
        assert_eq!(f.n_fixed(), 0);
    }

    #[test]
    fn empty_response_scores_only_eos() {
        // tgt = <s> </s> → seq = <s> 10 </s>, only the final </s> is maskable.
        let f = format_pair(&[0, 10, 2], &[0, 2], &SP, 512).unwrap();
        assert_eq!(f.ids, vec![0, 10, 2]);
        assert_eq!(f.fixed, vec![true, true, false]);
    }

    #[test]
    fn rejects_ids_without_special_tokens() {
        assert!(format_pair(&[10, 11], &[0, 20, 2], &SP, 512).is_err());
        assert!(format_pair(&[0, 10, 2], &[20, 2], &SP, 512).is_err());
        assert!(format_pair(&[0, 10, 2], &[0], &SP, 512).is_err());
        assert!(format_pair(&[0, 10, 2], &[0, 2], &SP, 1).is_err());
    }

    #[test]
    fn canvas_layout() {
        // src = <s> 10 11 </s>, L = 3 → <s> 10 11 <mask> <mask> <mask> </s>, masks at 3..6.
        let c = generation_canvas(&[0, 10, 11, 2], 3, &SP, 512).unwrap();
        assert_eq!(c.ids, vec![0, 10, 11, 9, 9, 9, 2]);
        assert_eq!(c.generation(), 3..6);
        assert!(!c.is_generation(6) && c.is_generation(3));
        // max 5: 5 - 3 - 1 = 1 prompt token kept (11): [11 m m m </s>].
        let c = generation_canvas(&[0, 10, 11, 2], 3, &SP, 5).unwrap();
        assert_eq!(c.ids, vec![11, 9, 9, 9, 2]);
        assert_eq!(c.generation(), 1..4);
        // 3 masks + </s> = 4 > 3.
        assert!(generation_canvas(&[0, 10, 11, 2], 3, &SP, 3).is_err());
    }

    fn text_ids() -> impl Strategy<Value = Vec<u32>> {
        prop::collection::vec(10u32..1000, 0..40)
    }

    proptest! {
        #[test]
        fn format_invariants(prompt in text_ids(), response in text_ids(), max in 2usize..90) {
            let src: Vec<u32> = [vec![0], prompt.clone(), vec![2]].concat();
            let tgt: Vec<u32> = [vec![0], response.clone(), vec![2]].concat();
            let f = format_pair(&src, &tgt, &SP, max).unwrap();
            let full: Vec<u32> = [vec![0], prompt.clone(), response.clone(), vec![2]].concat();
            prop_assert_eq!(f.fixed.len(), f.ids.len());
            prop_assert!(f.len() <= max);
            // Fixed positions form a prefix.
            prop_assert!(f.fixed.windows(2).all(|w| w[0] || !w[1]));
            if full.len() <= max {
                // Nothing cut: <s> prompt response </s>, with <s> and prompt fixed.
                prop_assert_eq!(&f.ids, &full);
                prop_assert_eq!(f.n_fixed(), 1 + prompt.len());
            } else if response.len() + 2 <= max {
                // (<s> response </s> fits.)
                // Cut from the left: the sequence is the end of the full one, the response
                // and </s> are kept whole and are exactly the maskable positions.
                prop_assert_eq!(&f.ids[..], &full[full.len() - max..]);
                prop_assert_eq!(f.n_maskable(), response.len() + 1);
            }
            // The response end is always kept, and the last position is maskable.
            prop_assert_eq!(f.ids.last(), Some(&2));
            prop_assert!(!f.fixed[f.len() - 1]);
        }

        #[test]
        fn canvas_invariants(prompt in text_ids(), len in 0usize..30, max in 1usize..80) {
            let src: Vec<u32> = [vec![0], prompt.clone(), vec![2]].concat();
            match generation_canvas(&src, len, &SP, max) {
                Err(_) => prop_assert!(len + 1 > max),
                Ok(c) => {
                    prop_assert!(c.ids.len() <= max);
                    prop_assert_eq!(c.gen_len, len);
                    prop_assert_eq!(c.ids.len(), c.gen_start + len + 1);
                    prop_assert!(c.ids[c.generation()].iter().all(|&t| t == SP.mask));
                    prop_assert_eq!(c.ids.last(), Some(&SP.eos));
                    let head: Vec<u32> = [vec![0], prompt.clone()].concat();
                    prop_assert_eq!(&c.ids[..c.gen_start], &head[head.len() - c.gen_start..]);
                }
            }
        }
    }
}
