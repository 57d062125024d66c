//! The bodies of the fuzz targets in `fuzz_targets/`, one function per parser that reads
//! outside input. Each takes the raw fuzz input and may return errors freely: the only
//! property checked is "no panic" (and, under libFuzzer, no crash, leak or timeout).
//!
//! The same file is compiled into `crates/dlm-cli/tests/fuzz_corpus.rs` (by `#[path]`),
//! which replays every committed corpus file through these functions on the stable
//! toolchain, so it may only use crates that test also has: dlm-data, dlm-models,
//! dlm-server, dlm-train, serde_json and tempfile.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Every target: its name (the `fuzz_targets/<name>.rs` binary and `corpus/<name>/`) and
/// its body.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("server_request", server_request),
    ("prompt_jsonl", prompt_jsonl),
    ("run_config", run_config),
    ("tokenizer_files", tokenizer_files),
    ("safetensors", safetensors),
    ("fairseq_dict", fairseq_dict),
    ("torch_checkpoint", torch_checkpoint),
    ("chat_template", chat_template),
];

// Real fixtures the targets need besides the fuzz input (paths relative to this file).
const XLMR_TOKENIZER: &str = include_str!("../../crates/dlm-models/tests/fixtures/tiny-xlmr/tokenizer.json");
const XLMR_TOKENIZER_CONFIG: &str =
    include_str!("../../crates/dlm-models/tests/fixtures/tiny-xlmr/tokenizer_config.json");
const LLADA_TOKENIZER_CONFIG: &str = include_str!("../../crates/dlm-data/tests/fixtures/chat/llada/tokenizer_config.json");
const BERT_CONFIG: &str = include_str!("../../crates/dlm-models/tests/fixtures/tiny-bert/config.json");

/// One scratch directory for the whole process (inputs are written into it, one file each).
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir")).path()
}

/// `scratch()/sub/name` holding `bytes`, with `sub` holding nothing else but `extra` files.
fn write_in(sub: &str, name: &str, bytes: &[u8], extra: &[(&str, &str)]) -> PathBuf {
    let dir = scratch().join(sub);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).expect("scratch dir");
        for (n, text) in extra {
            std::fs::write(dir.join(n), text).expect("scratch file");
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("scratch file");
    path
}

/// The tiny XLM-R tokenizer of the test fixtures.
fn xlmr_tokenizer() -> &'static dlm_data::Tokenizer {
    static TOK: OnceLock<dlm_data::Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let path = write_in(
            "xlmr",
            "tokenizer.json",
            XLMR_TOKENIZER.as_bytes(),
            &[("tokenizer_config.json", XLMR_TOKENIZER_CONFIG)],
        );
        dlm_data::Tokenizer::from_path(path.parent().unwrap()).expect("fixture tokenizer")
    })
}

/// The server's request parsers: with the default chat template, and with LLaDA's Jinja one.
fn request_parsers() -> &'static [dlm_server::fuzzing::RequestParser; 2] {
    static P: OnceLock<[dlm_server::fuzzing::RequestParser; 2]> = OnceLock::new();
    P.get_or_init(|| {
        let make = |template: dlm_server::ChatTemplate, classes| {
            dlm_server::fuzzing::RequestParser::new(xlmr_tokenizer().clone(), template, 90, 34, classes)
                .expect("fixture parser")
        };
        let jinja_dir = write_in("llada", "tokenizer_config.json", LLADA_TOKENIZER_CONFIG.as_bytes(), &[]);
        let jinja = dlm_server::ChatTemplate::for_model(jinja_dir.parent().unwrap()).expect("fixture template");
        assert!(jinja.is_jinja());
        [make(dlm_server::ChatTemplate::default(), None), make(jinja, Some(8))]
    })
}

/// `dlm-server`: a request body. First byte: bit 0 chat (else completions), bit 1 the
/// model with a Jinja chat template and a length predictor. The rest is the body.
pub fn server_request(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else { return };
    let parser = &request_parsers()[usize::from(mode & 2 != 0)];
    let _ = parser.parse(mode & 1 != 0, body);
}

/// `dlm_data::read_prompt_jsonl`: the bytes as a prompted JSONL file.
pub fn prompt_jsonl(data: &[u8]) {
    let path = write_in("jsonl", "rows.jsonl", data, &[]);
    let _ = dlm_data::read_prompt_jsonl(&path);
}

/// `dlm_train::RunConfig::parse`: a TOML run config; after a NUL byte, one `--set`
/// override per line.
pub fn run_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (config, overrides) = text.split_once('\0').unwrap_or((&text, ""));
    let overrides: Vec<String> = overrides.lines().map(str::to_owned).collect();
    let _ = dlm_train::RunConfig::parse(config, Path::new("fuzz.toml"), &overrides);
}

/// `dlm_data::Tokenizer`: first byte picks the file (`tokenizer.json`, `vocab.txt` or a
/// SentencePiece `sentencepiece.bpe.model`), the rest is its content; a tokenizer that
/// loads also encodes and decodes a short text.
pub fn tokenizer_files(data: &[u8]) {
    let Some((&kind, file)) = data.split_first() else { return };
    let (sub, name) = match kind % 3 {
        0 => ("tok-json", "tokenizer.json"),
        1 => ("tok-txt", "vocab.txt"),
        _ => ("tok-spm", "sentencepiece.bpe.model"),
    };
    let path = write_in(sub, name, file, &[]);
    let Ok(tok) = dlm_data::Tokenizer::from_dir(path.parent().unwrap()) else { return };
    let _ = tok.special_tokens();
    if let Ok(ids) = tok.encode("Hello world, <mask> héllo!", true) {
        let _ = tok.decode(&ids, false);
        let _ = tok.decode(&ids, true);
    }
    let _ = tok.decode(&[0, 1, 2, 3, 5, 1000, u32::MAX], false);
}

/// `dlm_models::Backbone::load` of a `model.safetensors` (the bytes) beside the tiny BERT
/// config of the test fixtures.
pub fn safetensors(data: &[u8]) {
    let path = write_in("safetensors", "model.safetensors", data, &[("config.json", BERT_CONFIG)]);
    let _ = dlm_models::Backbone::load(path.parent().unwrap(), &dlm_models::LoadOptions::default());
}

/// `dlm_data::FairseqDictionary::load` of a `dict.txt`, then its vocabulary map against the
/// tiny XLM-R tokenizer.
pub fn fairseq_dict(data: &[u8]) {
    let path = write_in("fairseq", "dict.txt", data, &[]);
    let Ok(dict) = dlm_data::FairseqDictionary::load(&path) else { return };
    let tok = xlmr_tokenizer();
    if let Ok(special) = tok.special_tokens() {
        let _ = dict.vocab_map(tok, &special);
    }
}

/// `dlm_models::read_torch_state_dict` (the importer's checkpoint reader) on a
/// `torch.save` zip, as a whole and under DeepSpeed's `"module"` key.
pub fn torch_checkpoint(data: &[u8]) {
    let path = write_in("torch", "mp_rank_00_model_states.pt", data, &[]);
    let _ = dlm_models::read_torch_state_dict(&path, None);
    let _ = dlm_models::read_torch_state_dict(&path, Some("module"));
}

/// `dlm_data::ChatTemplate::from_source` + `render`: the template source up to the first
/// NUL byte, then NUL-separated messages (`system:`/`assistant:` prefixes pick the role,
/// else `user`).
pub fn chat_template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let source = parts.next().unwrap_or_default();
    let messages: Vec<dlm_data::ChatMessage> = parts
        .map(|m| match m.split_once(':') {
            Some((role @ ("system" | "assistant" | "user" | "tool"), content)) => dlm_data::ChatMessage::new(role, content),
            _ => dlm_data::ChatMessage::user(m),
        })
        .collect();
    let specials = [("bos_token", "<s>"), ("eos_token", "</s>")];
    let Ok(template) = dlm_data::ChatTemplate::from_source(source, "fuzz.jinja", &specials) else { return };
    let _ = template.render(&messages, messages.len() % 2 == 1);
}
