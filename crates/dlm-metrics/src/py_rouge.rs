//! ROUGE-L as the paper's authors computed it: `py-rouge==1.1`'s
//! `Rouge(['rouge-l']).get_scores(hyps, [[r] for r in refs])['rouge-l']['f']`
//! (DiffusionLLM `src/dd_generator.py`; SPEC §8), with py-rouge's defaults:
//!
//! * text is split into sentences on `\n`; with the length limit on (default 665 "bytes",
//!   which py-rouge counts as Python characters) each sentence is stripped and sentences
//!   are kept until the running length reaches the limit, the last one cut to fit;
//! * per sentence: lowercase, every character outside `[A-Za-z0-9]` becomes a space,
//!   NLTK's word tokenizer (on such text it splits on whitespace and splits `gimme`,
//!   `gonna`, `gotta`, `lemme`, `wanna` in two; `cannot` is kept whole), and tokens longer
//!   than 3 characters are replaced by their WordNet base form when py-rouge's table has
//!   one, else Porter-stemmed with NLTK's `ORIGINAL_ALGORITHM` ([`crate::porter`]);
//! * summary-level LCS (union LCS of each reference sentence against every hypothesis
//!   sentence), where a hit also needs the token to be left in the hypothesis's unigram
//!   counts. py-rouge decrements the *reference* counts by token position instead of by
//!   token, so they never limit the hits; this is reproduced;
//! * P = hits / hypothesis tokens, R = hits / reference tokens,
//!   F = P·R / ((1 − α)·P + α·R) (0 when P or R is 0), α = 0.5 by default;
//! * the corpus figure is the mean of P, R and F over segments (`apply_avg=True`).
//!
//! This differs from rouge-score's ROUGE-L ([`crate::rouge`]): another stemmer mode, the
//! WordNet table, the length limit and a summary-level LCS. `dlm score rouge --py-rouge`
//! and the summarization reports of `dlm eval` offer both.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::pystr::{py_lower, py_split, py_strip};
use crate::{MetricError, RougeScore, porter};

/// py-rouge's WordNet base forms (keys of `[a-z0-9]` longer than 3 characters only).
const WORDNET: &str = include_str!("../data/py_rouge_wordnet.txt");

/// The options of `rouge.Rouge` that affect ROUGE-L.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PyRougeConfig {
    /// `stemming` (default true)
    pub stemming: bool,
    /// `length_limit` in characters with `length_limit_type='bytes'`; `None` is
    /// `limit_length=False` (default `Some(665)`)
    pub length_limit: Option<usize>,
    /// `alpha` of the F-measure (default 0.5, the harmonic mean)
    pub alpha: f64,
}

impl Default for PyRougeConfig {
    fn default() -> Self {
        Self {
            stemming: true,
            length_limit: Some(665),
            alpha: 0.5,
        }
    }
}

/// Mean ROUGE-L precision, recall and F over a corpus, plus the per-segment scores.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorpusPyRougeL {
    /// means over segments
    pub mean: RougeScore,
    /// per-segment scores, in input order
    pub segments: Vec<RougeScore>,
}

fn wordnet() -> &'static HashMap<&'static str, &'static str> {
    static TABLE: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        WORDNET
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('|'))
            .collect()
    })
}

/// `_preprocess_summary_per_sentence`'s truncation: sentences kept while the running
/// character count stays below `limit`, the last one cut.
fn truncate(sentences: Vec<&str>, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut used = 0usize;
    for s in sentences {
        let s = py_strip(s);
        let n = s.chars().count();
        if used + n < limit {
            out.push(s.to_string());
            used += n;
        } else {
            out.push(s.chars().take(limit - used).collect());
            break;
        }
    }
    out
}

/// NLTK's word tokenizer on text of `[a-z0-9_ ]`: the MacIntyre contractions that can
/// occur without an apostrophe split in two.
fn word_tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for t in text.split(' ').filter(|t| !t.is_empty()) {
        match t {
            "gimme" | "gonna" | "gotta" | "lemme" | "wanna" => {
                out.push(&t[..3]);
                out.push(&t[3..]);
            }
            _ => out.push(t),
        }
    }
    out
}

/// One sentence's tokens: lowercase, non-alphanumerics to spaces, the `cannot` guard,
/// tokenize, WordNet-or-Porter on tokens longer than 3 characters.
fn sentence_tokens(sentence: &str, stemming: bool) -> Vec<String> {
    let cleaned: String = py_lower(sentence)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { ' ' })
        .collect();
    let guarded = cleaned.trim().replace("cannot", "_cannot_");
    word_tokens(&guarded)
        .into_iter()
        .map(|t| {
            let t = if stemming && t.chars().count() > 3 {
                match wordnet().get(t) {
                    Some(base) => (*base).to_string(),
                    None => porter::stem_original(t),
                }
            } else {
                t.to_string()
            };
            t.replace("_cannot_", "cannot")
        })
        .collect()
}

/// A summary as py-rouge sees it for ROUGE-L: its sentences' tokens.
pub fn py_rouge_sentences(text: &str, cfg: &PyRougeConfig) -> Vec<Vec<String>> {
    let sentences: Vec<&str> = text.split('\n').collect();
    let sentences: Vec<String> = match cfg.length_limit {
        Some(limit) if limit > 0 => truncate(sentences, limit),
        _ => sentences.into_iter().map(String::from).collect(),
    };
    sentences
        .iter()
        .map(|s| {
            // py-rouge joins the tokens with spaces and splits again on whitespace
            sentence_tokens(s, cfg.stemming)
                .iter()
                .flat_map(|t| py_split(t).map(String::from).collect::<Vec<_>>())
                .collect()
        })
        .collect()
}

/// `_lcs` + `_mark_lcs`: marks in `hit` the positions of `r` on one LCS with `c`
/// (ties move up, i.e. drop a reference token first).
fn mark_lcs(r: &[String], c: &[String], hit: &mut [bool]) {
    let (m, n) = (r.len(), c.len());
    let mut vals = vec![vec![0u32; n + 1]; m + 1];
    for i in 1..=m {
        for j in 1..=n {
            vals[i][j] = if r[i - 1] == c[j - 1] {
                vals[i - 1][j - 1] + 1
            } else {
                vals[i - 1][j].max(vals[i][j - 1])
            };
        }
    }
    let (mut i, mut j) = (m, n);
    while i > 0 && j > 0 {
        if r[i - 1] == c[j - 1] {
            i -= 1;
            j -= 1;
            hit[i] = true;
        } else if vals[i - 1][j] >= vals[i][j - 1] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
}

/// `_compute_ngrams_lcs` and `_compute_p_r_f_score` for one hypothesis and one reference.
fn score_sentences(hyp: &[Vec<String>], reference: &[Vec<String>], alpha: f64) -> RougeScore {
    let mut hyp_counts: HashMap<&str, i64> = HashMap::new();
    for t in hyp.iter().flatten() {
        *hyp_counts.entry(t).or_insert(0) += 1;
    }
    let hyp_len: usize = hyp.iter().map(Vec::len).sum();
    let ref_len: usize = reference.iter().map(Vec::len).sum();
    let mut hits = 0usize;
    for r in reference {
        let mut hit = vec![false; r.len()];
        for c in hyp {
            mark_lcs(r, c, &mut hit);
        }
        for (t, _) in r.iter().zip(&hit).filter(|(_, h)| **h) {
            if let Some(left) = hyp_counts.get_mut(t.as_str()).filter(|n| **n > 0) {
                *left -= 1;
                hits += 1;
            }
        }
    }
    let ratio = |den: usize| if den == 0 { 0.0 } else { hits as f64 / den as f64 };
    let (precision, recall) = (ratio(hyp_len), ratio(ref_len));
    let fmeasure = if precision == 0.0 || recall == 0.0 {
        0.0
    } else {
        precision * recall / ((1.0 - alpha) * precision + alpha * recall)
    };
    RougeScore {
        precision,
        recall,
        fmeasure,
    }
}

/// py-rouge's ROUGE-L of one segment.
pub fn py_rouge_l(hyp: &str, reference: &str, cfg: &PyRougeConfig) -> RougeScore {
    score_sentences(
        &py_rouge_sentences(hyp, cfg),
        &py_rouge_sentences(reference, cfg),
        cfg.alpha,
    )
}

/// py-rouge's corpus ROUGE-L: the mean P, R and F over segments.
pub fn corpus_py_rouge_l<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    refs: &[R],
    cfg: &PyRougeConfig,
) -> Result<CorpusPyRougeL, MetricError> {
    crate::references::check_pairs(hyps, refs)?;
    let segments: Vec<RougeScore> = hyps
        .iter()
        .zip(refs)
        .map(|(h, r)| py_rouge_l(h.as_ref(), r.as_ref(), cfg))
        .collect();
    let n = segments.len() as f64;
    let mean = |f: fn(&RougeScore) -> f64| segments.iter().map(f).sum::<f64>() / n;
    Ok(CorpusPyRougeL {
        mean: RougeScore {
            precision: mean(|s| s.precision),
            recall: mean(|s| s.recall),
            fmeasure: mean(|s| s.fmeasure),
        },
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<Vec<String>> {
        py_rouge_sentences(text, &PyRougeConfig::default())
    }

    #[test]
    fn preprocessing() {
        // WordNet base form ("were" -> "be"), original Porter ("cats" -> "cat"),
        // contractions split, "cannot" kept whole, short tokens untouched
        assert_eq!(
            tokens("The cats were gonna go, cannot stop!"),
            vec![vec!["the", "cat", "be", "gon", "na", "go", "cannot", "stop"]]
        );
        // two sentences; non-ASCII letters become spaces
        assert_eq!(tokens("a b\ncafé"), vec![vec!["a", "b"], vec!["caf"]]);
    }

    #[test]
    fn length_limit_cuts_the_text() {
        let long = "word ".repeat(200); // 999 characters once stripped
        let cut = tokens(&long);
        // 665 characters: 133 five-character "word " groups
        assert_eq!(cut[0].len(), 133);
        let cfg = PyRougeConfig {
            length_limit: None,
            ..PyRougeConfig::default()
        };
        assert_eq!(py_rouge_sentences(&long, &cfg)[0].len(), 200);
        // the second sentence is cut to what the first left over
        let two = format!("{}\nabc def", "x".repeat(663));
        assert_eq!(tokens(&two), vec![vec!["x".repeat(663)], vec!["ab".to_string()]]);
    }

    #[test]
    fn reference_counts_never_limit_hits() {
        // py-rouge's bug: only hypothesis counts are decremented. The reference "a a"
        // against hypothesis "a" gives 1 hit (limited by the hypothesis' one "a").
        let s = py_rouge_l("a", "a a", &PyRougeConfig::default());
        assert_eq!((s.precision, s.recall), (1.0, 0.5));
        // Hypothesis sentences each match the same reference token: the union marks it
        // once, so "a\na" against "a" is 1 hit; P = 1/2.
        let s = py_rouge_l("a\na", "a", &PyRougeConfig::default());
        assert_eq!((s.precision, s.recall), (0.5, 1.0));
        assert!((s.fmeasure - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn empty_and_errors() {
        let s = py_rouge_l("", "a b", &PyRougeConfig::default());
        assert_eq!(s, RougeScore::default());
        let none: [&str; 0] = [];
        assert_eq!(
            corpus_py_rouge_l(&none, &none, &PyRougeConfig::default()),
            Err(MetricError::EmptyCorpus)
        );
        assert!(matches!(
            corpus_py_rouge_l(&["a"], &["a", "b"], &PyRougeConfig::default()),
            Err(MetricError::LengthMismatch { hyps: 1, refs: 2 })
        ));
    }
}
