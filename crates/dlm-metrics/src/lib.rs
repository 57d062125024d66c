//! Evaluation metrics (SPEC §8), pure Rust, no tensor dependency.
//!
//! * [`bleu`]: corpus BLEU identical to sacreBLEU 2.6.0 (tokenizers in [`tokenizers`]),
//!   with its signature string;
//! * [`chrf`]: chrF / chrF++ identical to sacreBLEU 2.6.0;
//! * [`rouge`]: ROUGE-1/2/L/Lsum identical to rouge-score 0.1.2 (stemmer in [`porter`]);
//! * [`py_rouge`]: ROUGE-L identical to py-rouge 1.1, the paper authors' metric (SPEC §8);
//! * [`mod@exact_match`]: SQuAD v1.1 normalisation, exact match and token F1;
//! * [`answer`]: multiple-choice letter extraction and the GSM8K/MGSM last-integer rule.
//!
//! Golden tests against the Python packages live in `tests/` with the fixtures written by
//! `scripts/reference/metrics_fixtures.py`.

pub mod answer;
pub mod bleu;
mod bleu_config;
pub mod chrf;
mod error;
pub mod exact_match;
mod ngrams;
pub mod porter;
mod references;
pub mod py_rouge;
pub mod pystr;
pub mod rouge;
pub mod tokenizers;

pub use answer::{
    choice_correct, extract_choice, extract_choice_letter, gsm_correct, last_integer,
};
pub use bleu::{
    BleuConfig, BleuScore, BleuStats, Smoothing, corpus_bleu, corpus_bleu_multi, sentence_bleu,
};
pub use chrf::{ChrfConfig, ChrfScore, corpus_chrf, corpus_chrf_multi};
pub use error::MetricError;
pub use exact_match::{exact_match, max_over_golds, normalize_answer, token_f1};
pub use py_rouge::{CorpusPyRougeL, PyRougeConfig, corpus_py_rouge_l};
pub use rouge::{CorpusRouge, RougeScore, RougeScores, corpus_rouge, rouge_scores};
pub use tokenizers::BleuTokenizer;
