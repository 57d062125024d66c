//! What every loader produces: prompt-response examples grouped into subsets (a file, a
//! subject, a language), the unit in which examples are counted, skipped and averaged.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::task::Task;

/// One evaluation example in the SPEC §2 prompt-response form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The prompt, demonstrations and cue included (`... English: `, `... A:`).
    pub prompt: String,
    /// The response: the reference for scoring, and (tokenized) the oracle length.
    pub target: String,
    /// Number of options of a multiple-choice question (letters `A`.. that count as
    /// answers); `None` for other tasks.
    pub options: Option<usize>,
}

/// A named group of examples (one file, subject or language).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subset {
    pub name: String,
    /// The file it was read from.
    pub source: PathBuf,
    pub examples: Vec<Example>,
}

/// The input format a dataset was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The paper's prompted JSONL `{"inputs", "targets"}` (demonstrations included).
    Prompted,
    /// Line-aligned parallel text (`valid.de` / `valid.en`).
    Parallel,
    /// GSM8K JSONL `{"question", "answer"}` with `#### n`.
    Gsm8k,
    /// MGSM TSV `question<TAB>answer` with `mgsm_exemplars.json`.
    Mgsm,
    /// MMLU CSV `question,choice0..3,answer`.
    MmluCsv,
    /// BIG-Bench Hard JSON `{"examples": [{"input", "target"}]}` with `cot-prompts`.
    BbhJson,
    /// TyDiQA GoldP JSON (SQuAD-like `data → paragraphs → qas`).
    TydiQaJson,
}

/// A loaded benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub task: Task,
    pub format: Format,
    /// Demonstrations per prompt: as asked for raw formats; read off a `<k>-shot` path
    /// component for prompted JSONL (`None` when the path does not say).
    pub shots: Option<usize>,
    /// How the prompts were built (a short description for the report).
    pub template: String,
    pub subsets: Vec<Subset>,
}

impl Dataset {
    /// Total number of examples over all subsets.
    pub fn len(&self) -> usize {
        self.subsets.iter().map(|s| s.examples.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Number of options `(A)`, `(B)`, … offered in the last question of a prompt: the
/// largest `n` such that `(A)` … `(n-th letter)` all occur after the last `Q:` (or in the
/// whole prompt when there is no `Q:`). `None` when not even `(A)` occurs.
pub fn count_options(prompt: &str) -> Option<usize> {
    let last = prompt.rfind("Q:").map_or(prompt, |i| &prompt[i..]);
    let n = (b'A'..=b'Z')
        .take_while(|&c| last.contains(&format!("({})", c as char)))
        .count();
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_of_the_last_question() {
        // Demonstration with 4 options, question with 2: "(A) Yes (B) No".
        let p = "Q: x (A) 1 (B) 2 (C) 3 (D) 4 A: B | Q: y\nA: (A) Yes (B) No A:";
        assert_eq!(count_options(p), Some(2));
        // Lower-case (a)/(b) are not options.
        assert_eq!(
            count_options("Q: (a) s (b) t\nA: (A) (a) (B) (b) A:"),
            Some(2)
        );
        assert_eq!(count_options("no options"), None);
        // A gap stops the count: (A) (B) (D) → 2.
        assert_eq!(count_options("(A) (B) (D)"), Some(2));
    }
}
