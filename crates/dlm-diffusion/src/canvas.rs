//! The generation canvas (SPEC §4): `<s> prompt <mask>×L </s>`, where the `L` masks are
//! the generation positions and everything else is fixed.

use crate::error::{DiffusionError, Result};
use serde::{Deserialize, Serialize};

/// The special token ids the diffusion layer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialIds {
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub mask: u32,
}

impl SpecialIds {
    /// XLM-R: `<s>`=0, `<pad>`=1, `</s>`=2, `<mask>`=250001 (SPEC §1).
    pub const XLM_R: SpecialIds = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 250_001 };
}

/// The ids the tokenizer side discovered, less `unk` (the diffusion layer never needs it).
impl From<dlm_data::SpecialTokens> for SpecialIds {
    fn from(s: dlm_data::SpecialTokens) -> SpecialIds {
        SpecialIds { bos: s.bos, eos: s.eos, pad: s.pad, mask: s.mask }
    }
}

/// One row to denoise: token ids and which positions are generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas {
    ids: Vec<u32>,
    generate: Vec<bool>,
}

impl Canvas {
    /// `prefix <mask>×length </s>`, with `prefix = <s> prompt` (the prompt without its
    /// `</s>`, SPEC §2's `src[:-1]`).
    pub fn new(prefix: &[u32], length: usize, special: SpecialIds) -> Result<Canvas> {
        if length == 0 {
            return Err(DiffusionError::EmptyGeneration);
        }
        let mut ids = prefix.to_vec();
        ids.extend(std::iter::repeat_n(special.mask, length));
        ids.push(special.eos);
        let mut generate = vec![false; prefix.len()];
        generate.extend(std::iter::repeat_n(true, length));
        generate.push(false);
        Ok(Canvas { ids, generate })
    }

    /// The canvas `model` was trained on: [`Canvas::new`] for the BERT family, and for
    /// models whose generation code appends nothing after the generated positions (LLaDA,
    /// Dream) `prefix <mask>×length`.
    pub fn for_model(model: &dyn dlm_models::MaskedLm, prefix: &[u32], length: usize, special: SpecialIds) -> Result<Canvas> {
        let mut canvas = Canvas::new(prefix, length, special)?;
        if !model.closes_canvas_with_eos() {
            canvas.ids.pop();
            canvas.generate.pop();
        }
        Ok(canvas)
    }

    /// The oracle-length canvas of a formatted example (the released code's
    /// `oracle_length=True`): every position that is not fixed and not `<pad>`, `<s>` or
    /// `</s>` is generated, i.e. replaced by `<mask>`.
    pub fn oracle(ids: &[u32], fixed: &[bool], special: SpecialIds) -> Result<Canvas> {
        if ids.len() != fixed.len() {
            return Err(DiffusionError::InvalidBatch(format!("{} ids but {} fixed flags", ids.len(), fixed.len())));
        }
        let generate: Vec<bool> = ids
            .iter()
            .zip(fixed)
            .map(|(&id, &f)| !f && id != special.pad && id != special.bos && id != special.eos)
            .collect();
        if !generate.iter().any(|&g| g) {
            return Err(DiffusionError::EmptyGeneration);
        }
        let ids = ids.iter().zip(&generate).map(|(&id, &g)| if g { special.mask } else { id }).collect();
        Ok(Canvas { ids, generate })
    }

    /// [`Canvas::oracle`] in the layout `model` generates in: for LLaDA and Dream (no
    /// `</s>` after the generated positions, [`Canvas::for_model`]) everything after the
    /// last generated position is dropped.
    pub fn oracle_for_model(model: &dyn dlm_models::MaskedLm, ids: &[u32], fixed: &[bool], special: SpecialIds) -> Result<Canvas> {
        let mut canvas = Canvas::oracle(ids, fixed, special)?;
        if !model.closes_canvas_with_eos() {
            let end = canvas.generate.iter().rposition(|&g| g).map_or(0, |last| last + 1);
            canvas.ids.truncate(end);
            canvas.generate.truncate(end);
        }
        Ok(canvas)
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
    pub fn generate(&self) -> &[bool] {
        &self.generate
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// Number of generation positions (N of SPEC §4).
    pub fn generation_len(&self) -> usize {
        self.generate.iter().filter(|&&g| g).count()
    }

    /// Errors unless the canvas fits in `max` positions.
    pub(crate) fn check_fits(&self, max: usize) -> Result<()> {
        if self.len() > max {
            let length = self.generation_len();
            let prefix = self.generate.iter().position(|&g| g).unwrap_or(self.len());
            return Err(DiffusionError::TooLong { prefix, length, needed: self.len(), max });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_layout() {
        let c = Canvas::new(&[0, 10, 11], 2, SpecialIds::XLM_R).unwrap();
        assert_eq!(c.ids(), &[0, 10, 11, 250_001, 250_001, 2]);
        assert_eq!(c.generate(), &[false, false, false, true, true, false]);
        assert_eq!(c.generation_len(), 2);
    }

    #[test]
    fn from_special_tokens_keeps_the_four_roles() {
        let tokens = dlm_data::SpecialTokens { bos: 101, eos: 102, pad: 0, mask: 103, unk: 100 };
        assert_eq!(SpecialIds::from(tokens), SpecialIds { bos: 101, eos: 102, pad: 0, mask: 103 });
    }

    #[test]
    fn zero_length_is_an_error() {
        assert!(matches!(Canvas::new(&[0, 10], 0, SpecialIds::XLM_R), Err(DiffusionError::EmptyGeneration)));
    }

    #[test]
    fn oracle_masks_response_but_not_specials() {
        // <s> p | r r </s> <pad>: the response tokens become masks, </s> and <pad> stay.
        let c = Canvas::oracle(&[0, 10, 20, 21, 2, 1], &[true, true, false, false, false, false], SpecialIds::XLM_R).unwrap();
        assert_eq!(c.ids(), &[0, 10, 250_001, 250_001, 2, 1]);
        assert_eq!(c.generation_len(), 2);
    }

    #[test]
    fn too_long_names_the_parts() {
        let c = Canvas::new(&[0; 10], 5, SpecialIds::XLM_R).unwrap();
        match c.check_fits(12) {
            Err(DiffusionError::TooLong { prefix: 10, length: 5, needed: 16, max: 12 }) => {}
            other => panic!("{other:?}"),
        }
    }
}
