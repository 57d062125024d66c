//! The benchmark tasks of the paper (SPEC §8) and what each one fixes: its metric and how
//! subsets are averaged, the default number of denoising steps (SPEC §4: 50 for
//! translation and summarisation, 10 for TyDiQA, 1 for multiple choice) and the default
//! length beam (SPEC §5: 10 for translation, 3 for TyDiQA).

use std::fmt;
use std::str::FromStr;

use dlm_metrics::BleuTokenizer;
use serde::{Deserialize, Serialize};

use crate::error::EvalError;

/// A benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Task {
    /// IWSLT14 German → English, BLEU (tok 13a, lower-cased).
    Iwslt14DeEn,
    /// IWSLT14 English → German, BLEU (tok 13a, lower-cased).
    Iwslt14EnDe,
    /// WMT14 English → German, BLEU (tok intl, lower-cased).
    Wmt14EnDe,
    /// Gigaword(-10K) headline generation, ROUGE-L.
    Gigaword,
    /// MMLU, accuracy, micro average over all questions.
    Mmlu,
    /// BIG-Bench Hard (27 tasks, Suzgun et al.), accuracy, macro average over tasks.
    Bbh,
    /// The paper's "BBH-NLP": 12 BIG-bench NLP tasks, accuracy, macro average over tasks.
    BbhNlp,
    /// TyDiQA GoldP, exact match (and F1), macro average over languages.
    TydiQa,
    /// GSM8K, accuracy of the last integer.
    Gsm8k,
    /// MGSM, accuracy of the last integer, macro average over languages.
    Mgsm,
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// sacreBLEU corpus BLEU on lower-cased text with the given tokenizer.
    Bleu,
    /// ROUGE-L F-measure as the authors computed it (py-rouge defaults), mean over
    /// segments, × 100; rouge-score's beside it.
    RougeL,
    /// Accuracy of the chosen option (letter or answer string), × 100.
    Accuracy,
    /// SQuAD exact match × 100 (token F1 reported beside it).
    ExactMatch,
    /// Accuracy of the last integer of the output (GSM8K rule), × 100.
    LastInteger,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Bleu => "bleu",
            Metric::RougeL => "rouge_l",
            Metric::Accuracy => "accuracy",
            Metric::ExactMatch => "exact_match",
            Metric::LastInteger => "accuracy",
        }
    }
}

/// How the overall score is formed from the subsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// One corpus-level score over every example of every subset (BLEU, ROUGE-L means).
    Corpus,
    /// Over all examples pooled.
    Micro,
    /// The mean of the subsets' scores (subsets with nothing scored are left out).
    Macro,
}

/// The task family, which decides the prompt templates and the loaders that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Translation { src: Language, tgt: Language },
    Summarization,
    MultipleChoice,
    Qa,
    Math,
}

/// A language of a translation pair: its name in the prompt and its file suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    German,
    English,
}

impl Language {
    /// As the paper's prompts write it (`"German"`, `"English"`).
    pub fn name(self) -> &'static str {
        match self {
            Language::German => "German",
            Language::English => "English",
        }
    }

    /// The suffix of its file in fairseq-style parallel text (`valid.de`).
    pub fn suffix(self) -> &'static str {
        match self {
            Language::German => "de",
            Language::English => "en",
        }
    }
}

impl Task {
    pub const ALL: [Task; 10] = [
        Task::Iwslt14DeEn,
        Task::Iwslt14EnDe,
        Task::Wmt14EnDe,
        Task::Gigaword,
        Task::Mmlu,
        Task::Bbh,
        Task::BbhNlp,
        Task::TydiQa,
        Task::Gsm8k,
        Task::Mgsm,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Task::Iwslt14DeEn => "iwslt14-deen",
            Task::Iwslt14EnDe => "iwslt14-ende",
            Task::Wmt14EnDe => "wmt14-ende",
            Task::Gigaword => "gigaword",
            Task::Mmlu => "mmlu",
            Task::Bbh => "bbh",
            Task::BbhNlp => "bbh-nlp",
            Task::TydiQa => "tydiqa",
            Task::Gsm8k => "gsm8k",
            Task::Mgsm => "mgsm",
        }
    }

    pub fn family(self) -> Family {
        use Language::{English, German};
        match self {
            Task::Iwslt14DeEn => Family::Translation {
                src: German,
                tgt: English,
            },
            Task::Iwslt14EnDe | Task::Wmt14EnDe => Family::Translation {
                src: English,
                tgt: German,
            },
            Task::Gigaword => Family::Summarization,
            Task::Mmlu | Task::Bbh | Task::BbhNlp => Family::MultipleChoice,
            Task::TydiQa => Family::Qa,
            Task::Gsm8k | Task::Mgsm => Family::Math,
        }
    }

    pub fn metric(self) -> Metric {
        match self.family() {
            Family::Translation { .. } => Metric::Bleu,
            Family::Summarization => Metric::RougeL,
            Family::MultipleChoice => Metric::Accuracy,
            Family::Qa => Metric::ExactMatch,
            Family::Math => Metric::LastInteger,
        }
    }

    pub fn aggregate(self) -> Aggregate {
        match self {
            Task::Iwslt14DeEn | Task::Iwslt14EnDe | Task::Wmt14EnDe | Task::Gigaword => {
                Aggregate::Corpus
            }
            Task::Mmlu | Task::Gsm8k => Aggregate::Micro,
            Task::Bbh | Task::BbhNlp | Task::TydiQa | Task::Mgsm => Aggregate::Macro,
        }
    }

    /// sacreBLEU's tokenizer for the BLEU tasks: `13a` for IWSLT14, `intl` for WMT14
    /// (the paper's signatures, Appendix A).
    pub fn bleu_tokenizer(self) -> Option<BleuTokenizer> {
        match self {
            Task::Iwslt14DeEn | Task::Iwslt14EnDe => Some(BleuTokenizer::Tok13a),
            Task::Wmt14EnDe => Some(BleuTokenizer::Intl),
            _ => None,
        }
    }

    /// K (SPEC §4): 50 for translation and summarisation, 10 for TyDiQA, 1 for multiple
    /// choice; 50 for math (the paper's "a large iteration number (50) for all tasks").
    pub fn default_steps(self) -> usize {
        match self.family() {
            Family::Translation { .. } | Family::Summarization | Family::Math => 50,
            Family::Qa => 10,
            Family::MultipleChoice => 1,
        }
    }

    /// B (SPEC §5) when a length predictor is used: 10 for translation and summarisation
    /// (the paper's Table 1), 3 for TyDiQA, 1 otherwise.
    pub fn default_length_beam(self) -> usize {
        match self.family() {
            Family::Translation { .. } | Family::Summarization => 10,
            Family::Qa => 3,
            Family::MultipleChoice | Family::Math => 1,
        }
    }

    fn expected() -> String {
        Task::ALL.map(Task::name).join(", ")
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Task {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Task, EvalError> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| EvalError::UnknownTask {
                name: s.to_string(),
                expected: Task::expected(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Task::ALL {
            assert_eq!(t.name().parse::<Task>().unwrap(), t);
        }
        let e = "squad".parse::<Task>().unwrap_err().to_string();
        assert!(
            e.contains("unknown task 'squad'") && e.contains("bbh-nlp"),
            "{e}"
        );
    }

    #[test]
    fn spec_defaults() {
        assert_eq!(Task::Iwslt14DeEn.default_steps(), 50);
        assert_eq!(Task::Gigaword.default_steps(), 50);
        assert_eq!(Task::TydiQa.default_steps(), 10);
        assert_eq!(Task::Mmlu.default_steps(), 1);
        assert_eq!(Task::BbhNlp.default_steps(), 1);
        assert_eq!(Task::Iwslt14DeEn.default_length_beam(), 10);
        assert_eq!(Task::TydiQa.default_length_beam(), 3);
        assert_eq!(Task::Wmt14EnDe.bleu_tokenizer(), Some(BleuTokenizer::Intl));
        assert_eq!(
            Task::Iwslt14EnDe.bleu_tokenizer(),
            Some(BleuTokenizer::Tok13a)
        );
    }
}
