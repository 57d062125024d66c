//! Task-specific vocabulary pruning (SPEC §6): which vocabulary ids a task keeps, and the
//! two-way id map between the original tokenizer's ids and a pruned model's ids.
//!
//! A pruned model directory holds `vocab_map.json` = the kept *original* ids in order
//! (`kept[new] = old`) beside the original tokenizer files. [`crate::Tokenizer::from_dir`]
//! applies it, so a pruned model reads and writes the same text as the original. Maps made
//! by `dlm train` are sorted; an imported checkpoint's map follows its dictionary's order
//! (`crate::fairseq_dict`) and may list an original id twice (tokens unknown to the
//! tokenizer share `<unk>`'s row): text then maps to the first model id that keeps it.

use crate::{DataError, SpecialTokens};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// File name of the map inside a model directory.
pub const VOCAB_MAP_FILE: &str = "vocab_map.json";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VocabMap {
    /// `kept[new_id] = original_id`.
    pub kept: Vec<u32>,
    #[serde(skip)]
    inverse: HashMap<u32, u32>,
}

impl VocabMap {
    /// The sorted set of `ids` plus the special tokens and every id up to the padding id
    /// (so that `<pad>` keeps its index, which RoBERTa-style position ids depend on).
    pub fn from_ids(ids: impl IntoIterator<Item = u32>, special: &SpecialTokens) -> VocabMap {
        let mut set: BTreeSet<u32> = ids.into_iter().collect();
        set.extend([special.bos, special.eos, special.pad, special.mask, special.unk]);
        set.extend(0..=special.pad);
        Self::new(set.into_iter().collect())
    }

    /// The map `kept[new_id] = original_id` as given (any order, repeats allowed).
    pub fn in_order(kept: Vec<u32>) -> VocabMap {
        Self::new(kept)
    }

    fn new(kept: Vec<u32>) -> VocabMap {
        let mut inverse = HashMap::with_capacity(kept.len());
        for (new, &old) in kept.iter().enumerate() {
            inverse.entry(old).or_insert(new as u32);
        }
        VocabMap { kept, inverse }
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Original id → model id (the first that keeps it), if kept.
    pub fn to_model(&self, original: u32) -> Option<u32> {
        self.inverse.get(&original).copied()
    }

    /// Model id → original id, if in range.
    pub fn to_original(&self, model: u32) -> Option<u32> {
        self.kept.get(model as usize).copied()
    }

    pub fn save(&self, dir: &Path) -> Result<(), DataError> {
        let path = dir.join(VOCAB_MAP_FILE);
        let text = serde_json::to_string(self).map_err(|e| bad(&path, e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| DataError::io(&path, e))
    }

    /// `Some(map)` when `dir` holds a `vocab_map.json`; a malformed map is an error.
    pub fn load(dir: &Path) -> Result<Option<VocabMap>, DataError> {
        let path = dir.join(VOCAB_MAP_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        let raw: VocabMap = serde_json::from_str(&text).map_err(|e| bad(&path, e.to_string()))?;
        if raw.kept.is_empty() {
            return Err(bad(&path, "no kept ids".into()));
        }
        Ok(Some(Self::new(raw.kept)))
    }
}

fn bad(path: &Path, message: String) -> DataError {
    DataError::BadVocabMap { path: path.into(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn special() -> SpecialTokens {
        SpecialTokens { bos: 0, pad: 1, eos: 2, unk: 3, mask: 89 }
    }

    #[test]
    fn keeps_specials_and_ids_below_pad_in_order() {
        // {40, 7, 12} ∪ specials {0, 1, 2, 3, 89} ∪ 0..=pad → [0, 1, 2, 3, 7, 12, 40, 89]
        let m = VocabMap::from_ids([40, 7, 7, 12], &special());
        assert_eq!(m.kept, vec![0, 1, 2, 3, 7, 12, 40, 89]);
        assert_eq!((m.to_model(12), m.to_model(13)), (Some(5), None));
        assert_eq!(m.to_original(6), Some(40));
        assert_eq!(m.to_original(8), None);
    }

    #[test]
    fn save_load_round_trip_and_rejects_empty() {
        let dir = tempfile::tempdir().unwrap();
        let m = VocabMap::from_ids([5, 9], &special());
        m.save(dir.path()).unwrap();
        assert_eq!(VocabMap::load(dir.path()).unwrap(), Some(m));
        std::fs::write(dir.path().join(VOCAB_MAP_FILE), "{\"kept\": []}").unwrap();
        let e = VocabMap::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no kept ids") && e.contains(VOCAB_MAP_FILE), "{e}");
        assert_eq!(VocabMap::load(tempfile::tempdir().unwrap().path()).unwrap(), None);
    }

    #[test]
    fn unsorted_maps_with_repeats_map_text_to_the_first_id() {
        // A dictionary-ordered map: <unk> (3) is kept at model ids 3 and 6.
        let m = VocabMap::in_order(vec![0, 1, 2, 3, 40, 7, 3, 89]);
        assert_eq!((m.to_model(40), m.to_model(7), m.to_model(3)), (Some(4), Some(5), Some(3)));
        assert_eq!((m.to_original(6), m.to_model(12)), (Some(3), None));
    }
}
