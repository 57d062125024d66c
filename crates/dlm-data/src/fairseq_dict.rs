//! A fairseq `dict.txt` and the vocabulary map of a model pruned with it, as the
//! DiffusionLLM authors' `remove_redundant_embeddings` (src/model/dd_model.py) pruned their
//! task checkpoints (SPEC §6):
//!
//! - `fairseq.data.Dictionary.load`: ids 0..=3 are `<s>`, `<pad>`, `</s>`, `<unk>`; then
//!   one id per line of `dict.txt` (`<token> <count> [#fairseq:overwrite]`), in file order.
//!   A repeated token is an error unless flagged `#fairseq:overwrite` (it then gets a new id).
//! - the pruned model's id `i` is dictionary id `i`; its rows are the original rows of
//!   `tokenizer.get_vocab()[dictionary[i]]`, or `<unk>`'s for a token the tokenizer lacks.
//!   The four fairseq specials map to the tokenizer's own bos/pad/eos/unk.
//!
//! The resulting [`VocabMap`] is therefore in dictionary order, not sorted, and may list
//! `<unk>`'s original id more than once.

use crate::{DataError, SpecialTokens, Tokenizer, VocabMap};
use std::path::{Path, PathBuf};

/// fairseq's default special symbols, ids 0..=3 of every `Dictionary`.
const FAIRSEQ_SPECIALS: [&str; 4] = ["<s>", "<pad>", "</s>", "<unk>"];

/// The symbols of a fairseq dictionary, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FairseqDictionary {
    pub symbols: Vec<String>,
    path: PathBuf,
}

impl FairseqDictionary {
    /// Reads `dict.txt` as `fairseq.data.Dictionary.load` does.
    pub fn load(path: &Path) -> Result<FairseqDictionary, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<FairseqDictionary, DataError> {
        let mut symbols: Vec<String> = FAIRSEQ_SPECIALS.iter().map(|s| s.to_string()).collect();
        for (n, raw) in text.lines().enumerate() {
            let bad = |message: String| DataError::Jsonl {
                path: path.into(),
                line: n + 1,
                message,
            };
            let line = raw.trim_end();
            let split = |s: &str| {
                s.rsplit_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
            };
            let expected = || {
                bad(format!(
                    "expected '<token> <count> [#fairseq:overwrite]', found {raw:?}"
                ))
            };
            let (mut token, mut field) = split(line).ok_or_else(expected)?;
            let overwrite = field == "#fairseq:overwrite";
            if overwrite {
                (token, field) = split(&token).ok_or_else(expected)?;
            }
            field.parse::<u64>().map_err(|_| expected())?;
            if !overwrite && symbols.contains(&token) {
                return Err(bad(format!(
                    "duplicate token {token:?} (fairseq refuses it without #fairseq:overwrite)"
                )));
            }
            symbols.push(token);
        }
        Ok(FairseqDictionary {
            symbols,
            path: path.into(),
        })
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The map from the pruned model's ids (dictionary ids) to the ids of `tokenizer` (the
    /// unpruned one the checkpoint was trained from). The dictionary must hold `<mask>`
    /// (the authors' `dictionary.index("<mask>")` would otherwise silently be `<unk>`).
    pub fn vocab_map(
        &self,
        tokenizer: &Tokenizer,
        special: &SpecialTokens,
    ) -> Result<VocabMap, DataError> {
        if !self.symbols.iter().any(|s| s == "<mask>") {
            return Err(DataError::BadVocabMap {
                path: self.path.clone(),
                message: "the dictionary has no <mask> line, so the pruned model has no mask token"
                    .into(),
            });
        }
        let fixed = [special.bos, special.pad, special.eos, special.unk];
        let kept = self
            .symbols
            .iter()
            .enumerate()
            .map(|(i, s)| match fixed.get(i) {
                Some(&id) => id,
                None => match FAIRSEQ_SPECIALS.iter().position(|f| f == s) {
                    Some(k) => fixed[k],
                    None => tokenizer.token_to_id(s).unwrap_or(special.unk),
                },
            })
            .collect();
        Ok(VocabMap::in_order(kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FairseqDictionary, DataError> {
        FairseqDictionary::parse(text, Path::new("dict.txt"))
    }

    #[test]
    fn specials_first_then_file_order() {
        let d = parse("▁the 100\n, 90\n<mask> 1\n").unwrap();
        assert_eq!(
            d.symbols,
            ["<s>", "<pad>", "</s>", "<unk>", "▁the", ",", "<mask>"]
        );
    }

    #[test]
    fn duplicates_need_the_overwrite_flag() {
        let e = parse("a 3\nb 2\na 1\n").unwrap_err().to_string();
        assert!(e.contains("dict.txt:3") && e.contains("duplicate"), "{e}");
        let d = parse("a 3\na 1 #fairseq:overwrite\n").unwrap();
        assert_eq!(d.symbols[4..], ["a", "a"]);
    }

    #[test]
    fn malformed_lines_are_named() {
        let e = parse("a 3\nnocount\n").unwrap_err().to_string();
        assert!(e.contains("dict.txt:2") && e.contains("nocount"), "{e}");
        let e = parse("a x\n").unwrap_err().to_string();
        assert!(e.contains("dict.txt:1"), "{e}");
    }
}
