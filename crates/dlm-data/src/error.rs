//! The error type of `dlm-data`. Every variant names the file or directory it is about, so
//! that a user can act on the one line the binary prints.

use std::path::PathBuf;

/// Errors of tokenizer loading, special-token discovery, formatting and data reading.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "no tokenizer in {dir}: expected tokenizer.json, vocab.txt, sentencepiece.bpe.model, \
         spiece.model or another *.model file. Either put the tokenizer file(s) into {dir}, \
         or say where the tokenizer is: --tokenizer PATH (a file or a folder), or \
         `tokenizer = \"PATH\"` under [model] in a run config"
    )]
    NoTokenizer { dir: PathBuf },

    #[error("cannot load tokenizer {path}: {message}")]
    TokenizerLoad { path: PathBuf, message: String },

    #[error("bad vocabulary map {path}: {message}")]
    BadVocabMap { path: PathBuf, message: String },

    #[error("invalid JSON in {path}: {message}")]
    Json { path: PathBuf, message: String },

    #[error("{path}:{line}: {message}")]
    Jsonl {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error(
        "no {role} token for the tokenizer in {dir}: looked in {looked}; add it to \
         special_tokens_map.json or tokenizer_config.json"
    )]
    MissingSpecialToken {
        role: &'static str,
        dir: PathBuf,
        looked: String,
    },

    #[error(
        "the {role} token disagrees in {dir}: the tokenizer gives id {tokenizer_id} but \
         config.json says {config_id}"
    )]
    SpecialTokenConflict {
        role: &'static str,
        dir: PathBuf,
        tokenizer_id: u32,
        config_id: u32,
    },

    #[error(
        "the tokenizer in {dir} does not fit the model: it has {tokenizer_vocab} ids (largest \
         id {max_id}) but the model's vocabulary has only {model_vocab} rows"
    )]
    VocabMismatch {
        dir: PathBuf,
        tokenizer_vocab: usize,
        max_id: u32,
        model_vocab: usize,
    },

    #[error("tokenizer {path}: {message}")]
    Tokenize { path: PathBuf, message: String },

    /// A chat template that cannot be read, compiled or rendered (the file it came from).
    #[error("chat template {path}: {message}")]
    ChatTemplate { path: PathBuf, message: String },

    #[error("cannot format example: {0}")]
    Format(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
