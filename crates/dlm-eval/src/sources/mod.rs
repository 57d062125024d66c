//! Loading a benchmark from `--data PATH`: which format the path holds, and the loaders
//! that turn each format into prompt-response [`Subset`]s.
//!
//! How a path is read (first match wins):
//!
//! 1. a path that does not exist, for translation/summarisation: the prefix of parallel
//!    text, `PATH.<src>` and `PATH.<tgt>` (`valid` → `valid.de`, `valid.en`; Gigaword
//!    `PATH.src`, `PATH.tgt`);
//! 2. a directory with a `<k>-shot` subdirectory (k = `--shots`, default 0): that one;
//!    a directory with `*.jsonl` files: those (translation: only `deen.jsonl`/`ende.jsonl`
//!    when present; `full.jsonl` is left out when there are other files, it repeats
//!    them); a directory with a single subdirectory and no data files: that one
//!    (`validation/`, `val/`); else the task's raw files (`*.csv` MMLU, `*.json` BBH,
//!    `*.tsv` MGSM, `*.json` TyDiQA GoldP);
//! 3. a file, by extension: `.jsonl` (prompted `{"inputs","targets"}` or GSM8K
//!    `{"question","answer"}`, told apart by the first row), `.csv`, `.json` (TyDiQA
//!    GoldP for task `tydiqa`, else BBH), `.tsv`.
//!
//! Few-shot demonstrations for raw formats: MGSM uses its exemplars 1..k in order (as the
//! paper's files do), BBH the exemplars of its `cot-prompts` file; GSM8K, MMLU, TyDiQA
//! (per language) and parallel text take the first `k` rows of the same file other than
//! the example itself.

mod bbh;
mod csv;
mod gsm8k;
mod mgsm;
mod mmlu;
mod parallel;
mod prompted;
mod tydiqa;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use dlm_data::Tokenizer;

use crate::error::{EvalError, Result};
use crate::example::{Dataset, Format};
use crate::task::{Family, Task};
use crate::templates::PromptStyle;

/// How to build prompts from raw data.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// Demonstrations per prompt (`None`: 0 for raw data; whatever the prompted files
    /// contain, which must then agree when given).
    pub shots: Option<usize>,
    pub style: PromptStyle,
    /// Needed for few-shot math, whose oracle target length is counted in tokens.
    pub tokenizer: Option<&'a Tokenizer>,
}

/// Reads the benchmark `task` from `path` (see the module documentation).
pub fn load(task: Task, path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let source = resolve(task, path, opts.shots)?;
    let shots_raw = opts.shots.unwrap_or(0);
    let (format, subsets, template) = match source {
        Source::Prompted(files) => {
            let path_shots =
                shots_in_path(path).or_else(|| files.first().and_then(|f| shots_in_path(f)));
            if let (Some(asked), Some(found)) = (opts.shots, path_shots)
                && asked != found
            {
                return Err(EvalError::input(
                    path,
                    format!("--shots {asked} but these prompted files are {found}-shot"),
                ));
            }
            let subsets = files
                .iter()
                .map(|f| prompted::load(task, f))
                .collect::<Result<Vec<_>>>()?;
            let template = "the prompts of the paper's files, as they are".to_string();
            return Ok(Dataset {
                task,
                format: Format::Prompted,
                shots: path_shots.or(opts.shots),
                template,
                subsets,
            });
        }
        Source::Parallel { src, tgt } => {
            let subset = parallel::load(task, &src, &tgt, shots_raw, opts.style)?;
            (
                Format::Parallel,
                vec![subset],
                parallel::template(task, opts.style),
            )
        }
        Source::Gsm8k(files) => {
            let subsets = files
                .iter()
                .map(|f| gsm8k::load(f, shots_raw, opts.tokenizer))
                .collect::<Result<Vec<_>>>()?;
            (Format::Gsm8k, subsets, gsm8k::TEMPLATE.to_string())
        }
        Source::Mgsm(files) => {
            let subsets = files
                .iter()
                .map(|f| mgsm::load(f, shots_raw, opts.tokenizer))
                .collect::<Result<Vec<_>>>()?;
            (Format::Mgsm, subsets, mgsm::TEMPLATE.to_string())
        }
        Source::Mmlu(files) => {
            let subsets = files
                .iter()
                .map(|f| mmlu::load(f, shots_raw))
                .collect::<Result<Vec<_>>>()?;
            (Format::MmluCsv, subsets, mmlu::TEMPLATE.to_string())
        }
        Source::Bbh(files) => {
            let subsets = files
                .iter()
                .map(|f| bbh::load(f, shots_raw))
                .collect::<Result<Vec<_>>>()?;
            (Format::BbhJson, subsets, bbh::TEMPLATE.to_string())
        }
        Source::TydiQa(files) => {
            let mut subsets = Vec::new();
            for f in &files {
                subsets.extend(tydiqa::load(f, shots_raw)?);
            }
            (Format::TydiQaJson, subsets, tydiqa::TEMPLATE.to_string())
        }
    };
    Ok(Dataset {
        task,
        format,
        shots: Some(shots_raw),
        template,
        subsets,
    })
}

/// The files of one format.
#[derive(Debug)]
enum Source {
    Prompted(Vec<PathBuf>),
    Parallel { src: PathBuf, tgt: PathBuf },
    Gsm8k(Vec<PathBuf>),
    Mgsm(Vec<PathBuf>),
    Mmlu(Vec<PathBuf>),
    Bbh(Vec<PathBuf>),
    TydiQa(Vec<PathBuf>),
}

/// The suffixes of parallel text for a task: (`de`, `en`), or (`src`, `tgt`) for
/// summarisation.
fn parallel_suffixes(task: Task) -> Option<(&'static str, &'static str)> {
    match task.family() {
        Family::Translation { src, tgt } => Some((src.suffix(), tgt.suffix())),
        Family::Summarization => Some(("src", "tgt")),
        _ => None,
    }
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

fn resolve(task: Task, path: &Path, shots: Option<usize>) -> Result<Source> {
    if !path.exists() {
        if let Some((s, t)) = parallel_suffixes(task) {
            let (src, tgt) = (with_suffix(path, s), with_suffix(path, t));
            if src.exists() || tgt.exists() {
                for p in [&src, &tgt] {
                    if !p.is_file() {
                        return Err(EvalError::MissingData { path: p.clone() });
                    }
                }
                return Ok(Source::Parallel { src, tgt });
            }
        }
        return Err(EvalError::MissingData {
            path: path.to_path_buf(),
        });
    }
    if path.is_dir() {
        return resolve_dir(task, path, shots);
    }
    classify_files(task, path, vec![path.to_path_buf()])
}

fn resolve_dir(task: Task, dir: &Path, shots: Option<usize>) -> Result<Source> {
    let shot_dir = dir.join(format!("{}-shot", shots.unwrap_or(0)));
    if shot_dir.is_dir() {
        return resolve_dir(task, &shot_dir, shots);
    }
    let (files, dirs) = list_dir(dir)?;
    let jsonl: Vec<PathBuf> = files
        .iter()
        .filter(|f| has_ext(f, "jsonl"))
        .cloned()
        .collect();
    if !jsonl.is_empty() {
        if let Family::Translation { src, tgt } = task.family() {
            let pair = dir.join(format!("{}{}.jsonl", src.suffix(), tgt.suffix()));
            if pair.is_file() {
                return classify_files(task, dir, vec![pair]);
            }
        }
        let without_full: Vec<PathBuf> = jsonl
            .iter()
            .filter(|f| f.file_name().is_none_or(|n| n != "full.jsonl"))
            .cloned()
            .collect();
        let chosen = if without_full.is_empty() {
            jsonl
        } else {
            without_full
        };
        return classify_files(task, dir, chosen);
    }
    let raw_ext = match task {
        Task::Mmlu => Some("csv"),
        Task::Bbh => Some("json"),
        Task::Mgsm => Some("tsv"),
        Task::TydiQa => Some("json"),
        _ => None,
    };
    if let Some(ext) = raw_ext {
        let raw: Vec<PathBuf> = files.iter().filter(|f| has_ext(f, ext)).cloned().collect();
        if !raw.is_empty() {
            return classify_files(task, dir, raw);
        }
    }
    if let [only] = &dirs[..] {
        return resolve_dir(task, only, shots);
    }
    Err(EvalError::input(
        dir,
        format!(
            "no data files for task {task} (expected *.jsonl{})",
            raw_ext.map(|e| format!(" or *.{e}")).unwrap_or_default()
        ),
    ))
}

/// Regular files and subdirectories of `dir`, sorted by name.
fn list_dir(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| EvalError::io(dir, e))? {
        let path = entry.map_err(|e| EvalError::io(dir, e))?.path();
        if path.is_dir() {
            dirs.push(path);
        } else if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e == ext)
}

/// The format of `files` (all must agree), checked against the task.
fn classify_files(task: Task, at: &Path, files: Vec<PathBuf>) -> Result<Source> {
    let first = files
        .first()
        .ok_or_else(|| EvalError::input(at, "no data files"))?
        .clone();
    let kind = kind_of(task, &first)?;
    for f in &files[1..] {
        if kind_of(task, f)? != kind {
            return Err(EvalError::input(
                f,
                format!("a {} file among {} files", kind_of(task, f)?.name(), kind.name()),
            ));
        }
    }
    let allowed = match kind {
        Kind::Prompted => true,
        Kind::Gsm8k => task == Task::Gsm8k,
        Kind::Mmlu => task == Task::Mmlu,
        Kind::Bbh => task == Task::Bbh,
        Kind::Mgsm => task == Task::Mgsm,
        Kind::TydiQa => task == Task::TydiQa,
    };
    if !allowed {
        return Err(EvalError::input(
            &first,
            format!("{} data cannot be evaluated as task {task}", kind.name()),
        ));
    }
    Ok(match kind {
        Kind::Prompted => Source::Prompted(files),
        Kind::Gsm8k => Source::Gsm8k(files),
        Kind::Mmlu => Source::Mmlu(files),
        Kind::Bbh => Source::Bbh(files),
        Kind::Mgsm => Source::Mgsm(files),
        Kind::TydiQa => Source::TydiQa(files),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prompted,
    Gsm8k,
    Mmlu,
    Bbh,
    Mgsm,
    TydiQa,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Prompted => "prompted JSONL",
            Kind::Gsm8k => "GSM8K JSONL",
            Kind::Mmlu => "MMLU CSV",
            Kind::Bbh => "BBH JSON",
            Kind::Mgsm => "MGSM TSV",
            Kind::TydiQa => "TyDiQA GoldP JSON",
        }
    }
}

/// The format of `file` by its extension (a `.json` file is TyDiQA GoldP for task
/// `tydiqa`, BBH otherwise).
fn kind_of(task: Task, file: &Path) -> Result<Kind> {
    match file.extension().and_then(|e| e.to_str()) {
        Some("jsonl") => jsonl_kind(file),
        Some("csv") => Ok(Kind::Mmlu),
        Some("json") if task == Task::TydiQa => Ok(Kind::TydiQa),
        Some("json") => Ok(Kind::Bbh),
        Some("tsv") => Ok(Kind::Mgsm),
        _ => Err(EvalError::input(
            file,
            "unknown data format (expected .jsonl, .csv, .json or .tsv)",
        )),
    }
}

/// Prompted or GSM8K JSONL, by the keys of the first non-blank row.
fn jsonl_kind(file: &Path) -> Result<Kind> {
    let f = std::fs::File::open(file).map_err(|e| EvalError::io(file, e))?;
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| EvalError::io(file, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| EvalError::parse(file, i + 1, format!("malformed JSON: {e}")))?;
        let has = |k: &str| value.get(k).is_some();
        return if has("inputs") || has("targets") {
            Ok(Kind::Prompted)
        } else if has("question") || has("answer") {
            Ok(Kind::Gsm8k)
        } else {
            Err(EvalError::parse(
                file,
                i + 1,
                "expected {\"inputs\", \"targets\"} (prompted) or {\"question\", \"answer\"} (GSM8K)",
            ))
        };
    }
    Err(EvalError::input(file, "empty file"))
}

/// `k` from a `<k>-shot` component of `path`.
fn shots_in_path(path: &Path) -> Option<usize> {
    path.components()
        .rev()
        .find_map(|c| c.as_os_str().to_str()?.strip_suffix("-shot")?.parse().ok())
}

/// The demonstrations of example `i` among `n` rows: the first `k` rows other than `i`.
pub(crate) fn demo_indices(i: usize, k: usize, n: usize, path: &Path) -> Result<Vec<usize>> {
    if k >= n {
        return Err(EvalError::input(
            path,
            format!(
                "{k}-shot prompts need at least {} rows, the file has {n}",
                k + 1
            ),
        ));
    }
    Ok((0..n).filter(|&j| j != i).take(k).collect())
}

/// The file stem as a subset name.
pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads a whole file.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))
}

/// Number of tokens of `text` without special tokens.
pub(crate) fn n_tokens(tokenizer: &Tokenizer, text: &str) -> Result<usize> {
    Ok(tokenizer.encode(text, false)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_one_out_demos() {
        assert_eq!(demo_indices(0, 2, 5, Path::new("x")).unwrap(), vec![1, 2]);
        assert_eq!(demo_indices(1, 2, 5, Path::new("x")).unwrap(), vec![0, 2]);
        assert_eq!(demo_indices(4, 2, 5, Path::new("x")).unwrap(), vec![0, 1]);
        assert!(demo_indices(0, 5, 5, Path::new("x")).is_err());
    }

    #[test]
    fn shots_from_path() {
        assert_eq!(
            shots_in_path(Path::new("eval/mmlu/2-shot/val/x.jsonl")),
            Some(2)
        );
        assert_eq!(shots_in_path(Path::new("eval/x.jsonl")), None);
    }
}
