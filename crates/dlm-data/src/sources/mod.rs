//! Raw instruction-tuning formats turned into [`PromptResponse`] pairs, for mixing
//! (SPEC §7, [`crate::mixture`]). One reader per format; every error names the file and
//! the 1-based line (or, for a JSON array, the element):
//!
//! | format | file | prompt → response |
//! |---|---|---|
//! | [`SourceFormat::Prompted`] | the paper's JSONL `{"inputs","targets"}` | as written ([`crate::read_prompt_jsonl`]) |
//! | [`SourceFormat::FlanCotTsv`] | `question TAB answer TAB rationale` | [`flan_cot`] |
//! | [`SourceFormat::AlpacaJson`] | `[{"instruction","input","output"}]` or JSONL | [`alpaca`] |
//! | [`SourceFormat::Gsm8k`] | JSONL `{"question","answer"}`, answer ending `#### n` | [`gsm8k`] |
//!
//! Any source can also be turned into k-shot prompts in the Flan 2022 few-shot format
//! ([`few_shot`], `shots` of a [`SourceSpec`]).

pub mod alpaca;
pub mod few_shot;
pub mod flan_cot;
pub mod gsm8k;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{DataError, PromptResponse, read_prompt_jsonl};

/// The raw format of one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// The paper's prompted JSONL (`{"inputs", "targets"}`).
    #[default]
    Prompted,
    /// Flan 2022 chain-of-thought TSV (`question TAB answer TAB rationale`).
    FlanCotTsv,
    /// Alpaca `{instruction, input, output}` records (a JSON array, or one a line).
    AlpacaJson,
    /// GSM8K JSONL (`{"question", "answer"}`, the answer ending in `#### n`).
    Gsm8k,
}

impl SourceFormat {
    /// The name used in configs (`prompted`, `flan_cot_tsv`, `alpaca_json`, `gsm8k`).
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Prompted => "prompted",
            SourceFormat::FlanCotTsv => "flan_cot_tsv",
            SourceFormat::AlpacaJson => "alpaca_json",
            SourceFormat::Gsm8k => "gsm8k",
        }
    }
}

/// Reads every row of `path` in `format` as prompt-response pairs.
pub fn read_source(
    path: impl AsRef<Path>,
    format: SourceFormat,
) -> Result<Vec<PromptResponse>, DataError> {
    let path = path.as_ref();
    match format {
        SourceFormat::Prompted => read_prompt_jsonl(path),
        SourceFormat::FlanCotTsv => flan_cot::read(path),
        SourceFormat::AlpacaJson => alpaca::read(path),
        SourceFormat::Gsm8k => gsm8k::read(path),
    }
}

/// An error at `path:line`.
pub(crate) fn line_error(path: &Path, line: usize, message: String) -> DataError {
    DataError::Jsonl {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// The non-blank lines of `path` with their 1-based numbers, each parsed by `parse`
/// (whose error message is placed after `path:line: `).
pub(crate) fn parse_lines<T>(
    path: &Path,
    mut parse: impl FnMut(&str) -> Result<T, String>,
) -> Result<Vec<T>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| line_error(path, i + 1, format!("cannot read line: {e}")))?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse(line).map_err(|m| line_error(path, i + 1, m))?);
    }
    Ok(out)
}

/// A string field of a JSON object.
pub(crate) fn string_field(
    obj: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<String, String> {
    match obj.get(name) {
        None => Err(format!("missing field \"{name}\"")),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("field \"{name}\" must be a string, found {other}")),
    }
}

/// A JSON object from one line.
pub(crate) fn json_object(
    line: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str(line) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        Ok(_) => Err("expected a JSON object".into()),
        Err(e) => Err(format!("malformed JSON: {e}")),
    }
}

/// A source file named in a mixture: its path, format, (unnormalised) weight, and how
/// many exemplars of the same source go before each prompt (0: zero-shot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSpec {
    pub path: PathBuf,
    #[serde(default)]
    pub format: SourceFormat,
    pub weight: f64,
    #[serde(default)]
    pub shots: usize,
    #[serde(default)]
    pub few_shot: few_shot::FewShotPattern,
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::io::Write;

    pub fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip_through_serde() {
        for f in [
            SourceFormat::Prompted,
            SourceFormat::FlanCotTsv,
            SourceFormat::AlpacaJson,
            SourceFormat::Gsm8k,
        ] {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.name()));
            assert_eq!(serde_json::from_str::<SourceFormat>(&json).unwrap(), f);
        }
    }

    #[test]
    fn read_source_dispatches_on_format() {
        let f = test_util::file_with("{\"inputs\": \"a\", \"targets\": \"b\"}\n");
        let rows = read_source(f.path(), SourceFormat::Prompted).unwrap();
        assert_eq!(rows[0].targets, "b");
        let f = test_util::file_with("q?\t7\tbecause.\n");
        let rows = read_source(f.path(), SourceFormat::FlanCotTsv).unwrap();
        assert!(rows[0].targets.ends_with("So the answer is 7."));
    }
}
