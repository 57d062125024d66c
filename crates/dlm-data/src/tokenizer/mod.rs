//! The tokenizer of a model directory, loaded the way HF `AutoTokenizer` would give it:
//! `tokenizer.json` when present (through the `tokenizers` crate, ids identical to
//! Python), else a BERT `vocab.txt` (`bert_vocab.rs`), else a SentencePiece model converted
//! with XLM-R's layout (`sentencepiece.rs`). Truncation and padding stored in a
//! `tokenizer.json` are switched off, as transformers does for a plain `encode`: lengths
//! are this crate's business (SPEC §2). A directory holding a `vocab_map.json` (a
//! vocabulary-pruned model, SPEC §6) gets a tokenizer that speaks the pruned model's ids:
//! every method below takes and returns model ids.

mod bert_vocab;
pub(crate) mod hf_files;
mod sentencepiece;

use std::path::{Path, PathBuf};

pub use sentencepiece::SpmConversion;

use crate::{DataError, SpecialTokens, VocabMap};
use hf_files::HfFiles;

/// Which file a [`Tokenizer`] was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerSource {
    /// A HuggingFace `tokenizer.json`.
    TokenizerJson,
    /// A BERT WordPiece `vocab.txt`.
    BertVocab,
    /// A SentencePiece `.model`, converted with XLM-R's layout.
    SentencePiece,
}

/// A HuggingFace tokenizer plus where it came from (for error messages and for finding the
/// side files that name its special tokens).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    dir: PathBuf,
    path: PathBuf,
    source: TokenizerSource,
    pruned: Option<Pruned>,
}

/// The id map of a vocabulary-pruned model and its `<unk>` on both sides.
#[derive(Debug, Clone)]
struct Pruned {
    map: VocabMap,
    unk_model: u32,
    unk_original: u32,
}

/// A `tokenizer.json`. Two things the `tokenizers` crate (0.22) panics on instead of
/// returning an error are checked here first (both found by fuzzing,
/// `fuzz/artifacts/tokenizer_files/`): a JSON syntax error inside some sections (`decoder`:
/// `DecoderHelper::deserialize(..).expect("Helper")`, e.g. a truncated download), and a
/// `TemplateProcessing` post-processor whose template names a special token its
/// `special_tokens` lack (deserialising skips the builder's check; encoding then indexes the
/// missing entry).
fn tokenizer_json(path: &Path) -> Result<tokenizers::Tokenizer, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let load_err = |message: String| DataError::TokenizerLoad {
        path: path.to_path_buf(),
        message,
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| load_err(format!("not valid JSON: {e}")))?;
    if let Some(processor) = json.get("post_processor") {
        check_templates(processor).map_err(load_err)?;
    }
    text.parse::<tokenizers::Tokenizer>()
        .map_err(|e| load_err(e.to_string()))
}

/// Every special token a `TemplateProcessing` template (`single`, `pair`) names is one of
/// its `special_tokens`. Templates are found by their shape anywhere in the post-processor
/// (inside a `Sequence` of processors, and whatever its `type` key looks like: the crate's
/// untagged fallback deserialises one without it).
fn check_templates(value: &serde_json::Value) -> Result<(), String> {
    match value {
        serde_json::Value::Array(items) => items.iter().try_for_each(check_templates),
        serde_json::Value::Object(map) => {
            let known = map.get("special_tokens").and_then(|t| t.as_object());
            for part in ["single", "pair"] {
                let pieces = map.get(part).and_then(|p| p.as_array()).into_iter().flatten();
                for piece in pieces {
                    let Some(id) = piece.pointer("/SpecialToken/id") else { continue };
                    let id = id.as_str().unwrap_or_default();
                    if !known.is_some_and(|k| k.contains_key(id)) {
                        return Err(format!(
                            "post_processor: the {part} template names special token {id:?}, \
                             which its special_tokens do not define"
                        ));
                    }
                }
            }
            map.values().try_for_each(check_templates)
        }
        _ => Ok(()),
    }
}

impl Tokenizer {
    /// Loads the tokenizer of a model directory: `tokenizer.json`, else `vocab.txt`, else
    /// `sentencepiece.bpe.model` / `spiece.model` / the first other `*.model` (by name).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, DataError> {
        Self::from_dir_with(dir, SpmConversion::default())
    }

    /// [`Tokenizer::from_dir`] with a choice of SentencePiece conversion; applies the
    /// directory's `vocab_map.json` when it has one.
    pub fn from_dir_with(dir: impl AsRef<Path>, spm: SpmConversion) -> Result<Self, DataError> {
        let dir = dir.as_ref();
        let tokenizer = Self::files_in(dir, spm)?;
        match VocabMap::load(dir)? {
            Some(map) => tokenizer.with_vocab_map(map),
            None => Ok(tokenizer),
        }
    }

    /// The tokenizer of the model in `model_dir`: `tokenizer` (a file or a folder, see
    /// [`Tokenizer::from_path`]) when the model keeps its tokenizer elsewhere, else the
    /// folder's own ([`Tokenizer::from_dir`]); either way with the model's `vocab_map.json`.
    pub fn for_model(model_dir: &Path, tokenizer: Option<&Path>) -> Result<Self, DataError> {
        let Some(path) = tokenizer else { return Self::from_dir(model_dir) };
        let t = Self::from_path(path)?;
        match (t.vocab_map(), VocabMap::load(model_dir)?) {
            (None, Some(map)) => t.with_vocab_map(map),
            _ => Ok(t),
        }
    }

    /// This tokenizer speaking the ids of a model pruned to `map` (SPEC §6): original ids
    /// the model does not keep become its `<unk>`.
    pub fn with_vocab_map(mut self, map: VocabMap) -> Result<Self, DataError> {
        let bad = |message: String| DataError::BadVocabMap { path: self.dir.join(crate::VOCAB_MAP_FILE), message };
        if self.pruned.is_some() {
            return Err(bad("the tokenizer already has a vocabulary map".into()));
        }
        let special = self.special_tokens()?;
        for (role, id) in [("bos", special.bos), ("eos", special.eos), ("pad", special.pad), ("mask", special.mask), ("unk", special.unk)] {
            if map.to_model(id).is_none() {
                return Err(bad(format!("the map does not keep the {role} token (id {id})")));
            }
        }
        let unk_model = map.to_model(special.unk).unwrap_or_default();
        self.pruned = Some(Pruned { map, unk_model, unk_original: special.unk });
        Ok(self)
    }

    /// The vocabulary map of a pruned model, if any.
    pub fn vocab_map(&self) -> Option<&VocabMap> {
        self.pruned.as_ref().map(|p| &p.map)
    }

    fn to_model(&self, ids: Vec<u32>) -> Vec<u32> {
        match &self.pruned {
            None => ids,
            Some(p) => ids.into_iter().map(|id| p.map.to_model(id).unwrap_or(p.unk_model)).collect(),
        }
    }

    fn files_in(dir: &Path, spm: SpmConversion) -> Result<Self, DataError> {
        if !dir.is_dir() {
            return Err(DataError::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            ));
        }
        for name in ["tokenizer.json", "vocab.txt"] {
            let p = dir.join(name);
            if p.is_file() {
                return Self::from_file_with(&p, spm);
            }
        }
        match find_spm_model(dir)? {
            Some(p) => Self::from_file_with(&p, spm),
            None => Err(DataError::NoTokenizer {
                dir: dir.to_path_buf(),
            }),
        }
    }

    /// Loads from a directory (as [`Tokenizer::from_dir`]) or from one file, chosen by its
    /// name: `*.json` is a `tokenizer.json`, `*.txt` a BERT vocabulary, `*.model` a
    /// SentencePiece model. Side files are looked for beside the file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        if path.is_dir() {
            Self::from_dir(path)
        } else {
            Self::from_file_with(path, SpmConversion::default())
        }
    }

    /// Loads one tokenizer file; see [`Tokenizer::from_path`].
    pub fn from_file_with(path: &Path, spm: SpmConversion) -> Result<Self, DataError> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let (inner, source) = if name.ends_with(".json") {
            (tokenizer_json(path)?, TokenizerSource::TokenizerJson)
        } else if name.ends_with(".txt") {
            let files = HfFiles::read(&dir)?;
            (
                bert_vocab::from_vocab_txt(path, &files)?,
                TokenizerSource::BertVocab,
            )
        } else if name.ends_with(".model") {
            let files = HfFiles::read(&dir)?;
            (
                sentencepiece::from_spm_file(path, &files, spm)?,
                TokenizerSource::SentencePiece,
            )
        } else {
            return Err(DataError::TokenizerLoad {
                path: path.to_path_buf(),
                message: "unknown tokenizer file type (expected *.json, *.txt or *.model)".into(),
            });
        };
        let mut inner = inner;
        inner
            .with_truncation(None)
            .map_err(|e| DataError::TokenizerLoad {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
            .with_padding(None);
        Ok(Tokenizer {
            inner,
            dir,
            path: path.to_path_buf(),
            source,
            pruned: None,
        })
    }

    /// Token ids of `text`; with `add_special_tokens` the post-processor's template is
    /// applied (`<s> … </s>` for XLM-R, `[CLS] … [SEP]` for BERT).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, DataError> {
        self.inner
            .encode_fast(text, add_special_tokens)
            .map(|e| self.to_model(e.get_ids().to_vec()))
            .map_err(|e| self.tokenize_err(e))
    }

    /// [`Tokenizer::encode`] of many texts, in parallel.
    pub fn encode_batch(
        &self,
        texts: &[&str],
        add_special_tokens: bool,
    ) -> Result<Vec<Vec<u32>>, DataError> {
        let inputs: Vec<tokenizers::EncodeInput> = texts.iter().map(|t| (*t).into()).collect();
        self.inner
            .encode_batch_fast(inputs, add_special_tokens)
            .map(|es| es.iter().map(|e| self.to_model(e.get_ids().to_vec())).collect())
            .map_err(|e| self.tokenize_err(e))
    }

    /// Text of `ids`, as the `tokenizers` decoder gives it (Python `Tokenizer.decode`).
    /// transformers' `decode` may in addition apply [`clean_up_tokenization`]; see
    /// [`Tokenizer::clean_up_tokenization_spaces`].
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, DataError> {
        let original: Vec<u32> = match &self.pruned {
            None => ids.to_vec(),
            Some(p) => ids.iter().map(|&id| p.map.to_original(id).unwrap_or(p.unk_original)).collect(),
        };
        self.inner
            .decode(&original, skip_special_tokens)
            .map_err(|e| self.tokenize_err(e))
    }

    /// The id of a token text (added tokens included).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        let id = self.inner.token_to_id(token)?;
        match &self.pruned {
            None => Some(id),
            Some(p) => p.map.to_model(id),
        }
    }

    /// The text of a token id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        let original = match &self.pruned {
            None => id,
            Some(p) => p.map.to_original(id)?,
        };
        self.inner.id_to_token(original)
    }

    /// Number of ids, added tokens included (250,002 for XLM-R, 30,522 for BERT-base).
    pub fn vocab_size(&self) -> usize {
        match &self.pruned {
            None => self.inner.get_vocab_size(true),
            Some(p) => p.map.len(),
        }
    }

    /// The largest id the tokenizer can produce.
    pub fn max_id(&self) -> u32 {
        if let Some(p) = &self.pruned {
            return p.map.len().saturating_sub(1) as u32;
        }
        let added = self.inner.get_added_tokens_decoder().into_keys().max();
        let model = self.inner.get_vocab(false).into_values().max();
        added.max(model).unwrap_or(0)
    }

    /// Errors when the tokenizer can produce an id that the model's embedding table (of
    /// `model_vocab_size` rows) does not have. A model larger than its tokenizer is fine.
    pub fn check_fits(&self, model_vocab_size: usize) -> Result<(), DataError> {
        let max_id = self.max_id();
        if max_id as usize >= model_vocab_size {
            return Err(DataError::VocabMismatch {
                dir: self.dir.clone(),
                tokenizer_vocab: self.vocab_size(),
                max_id,
                model_vocab: model_vocab_size,
            });
        }
        Ok(())
    }

    /// The special tokens of this tokenizer; see [`SpecialTokens::discover`].
    pub fn special_tokens(&self) -> Result<SpecialTokens, DataError> {
        SpecialTokens::discover(self)
    }

    /// `tokenizer_config.json`'s `clean_up_tokenization_spaces`, when it says.
    pub fn clean_up_tokenization_spaces(&self) -> Result<Option<bool>, DataError> {
        Ok(HfFiles::read(&self.dir)?.tokenizer_flag("clean_up_tokenization_spaces"))
    }

    /// The directory whose side files describe this tokenizer.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What kind of file it was loaded from.
    pub fn source(&self) -> TokenizerSource {
        self.source
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn tokenize_err(&self, e: tokenizers::Error) -> DataError {
        DataError::Tokenize {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

/// transformers' `clean_up_tokenization`: removes the spaces a word-piece decoder leaves
/// before punctuation and English contractions (`" ."` → `"."`, `" n't"` → `"n't"`, ...).
pub fn clean_up_tokenization(text: &str) -> String {
    [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ]
    .iter()
    .fold(text.to_owned(), |s, (from, to)| s.replace(from, to))
}

/// `sentencepiece.bpe.model`, `spiece.model`, or the first other `*.model` by name.
fn find_spm_model(dir: &Path) -> Result<Option<PathBuf>, DataError> {
    for name in ["sentencepiece.bpe.model", "spiece.model"] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(Some(p));
        }
    }
    let mut models = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let p = entry.map_err(|e| DataError::io(dir, e))?.path();
        if p.is_file() && p.extension().is_some_and(|e| e == "model") {
            models.push(p);
        }
    }
    models.sort();
    Ok(models.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_up_matches_transformers_rules() {
        assert_eq!(
            clean_up_tokenization("it 's a test , is n't it ?"),
            "it's a test, isn't it?"
        );
    }

    #[test]
    fn missing_dir_and_empty_dir_are_named() {
        let e = Tokenizer::from_dir("/nonexistent/dlm-model")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/dlm-model"), "{e}");
        let tmp = tempfile::tempdir().unwrap();
        let e = Tokenizer::from_dir(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("no tokenizer in") && e.contains(&tmp.path().display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn bad_tokenizer_json_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("tokenizer.json");
        std::fs::write(&p, "{ not json").unwrap();
        let e = Tokenizer::from_dir(tmp.path()).unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()), "{e}");
    }

    /// Found by fuzzing (fuzz/artifacts/tokenizer_files/decoder-json-syntax-error, its
    /// first byte the target's mode): a syntax error inside `decoder` made the `tokenizers`
    /// crate panic; it is an error naming the file, the line and the column.
    #[test]
    fn a_syntax_error_in_the_decoder_is_an_error_not_a_panic() {
        let e = artifact_error("decoder-json-syntax-error");
        assert!(e.contains("not valid JSON") && e.contains("line"), "{e}");
    }

    /// The error of loading `fuzz/artifacts/tokenizer_files/<name>` (its first byte the
    /// fuzz target's mode) as a `tokenizer.json`; it names the file.
    fn artifact_error(name: &str) -> String {
        let input = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/artifacts/tokenizer_files")
            .join(name);
        let bytes = std::fs::read(input).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("tokenizer.json");
        std::fs::write(&p, &bytes[1..]).unwrap();
        let e = Tokenizer::from_dir(tmp.path()).unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()), "{name}: {e}");
        e
    }

    /// Found by fuzzing (fuzz/artifacts/tokenizer_files/template-unknown-special-token): a
    /// post-processor template naming a special token it does not define made the
    /// `tokenizers` crate panic at the first encode; loading it is now an error naming it.
    /// (`…-untyped`: the same with its `type` key misspelt, which the crate still reads.)
    #[test]
    fn a_template_with_an_undefined_special_token_is_an_error() {
        for name in ["template-unknown-special-token", "template-unknown-special-token-untyped"] {
            let e = artifact_error(name);
            assert!(
                e.contains("post_processor") && e.contains("do not define"),
                "{name}: {e}"
            );
        }
    }
}
