//! Scoring predictions against references (SPEC §8) — the one path that both generated
//! and given (`--predictions`) outputs go through. Scores are percentages (0-100).
//!
//! | metric | per example / corpus | from |
//! |---|---|---|
//! | BLEU | corpus BLEU, hypotheses and references lower-cased (sacreBLEU `lowercase=True`, which is `.lower()` before scoring as the authors do), tok `13a`/`intl`, exp smoothing | `dlm_metrics::corpus_bleu` |
//! | ROUGE-L | py-rouge ROUGE-L F as the authors computed it (stemming, 665-character limit, α 0.5), mean over segments; rouge-score's ROUGE-L F (Porter stemming) beside it as `rouge_score` | `dlm_metrics::{corpus_py_rouge_l, corpus_rouge}` |
//! | accuracy (multiple choice) | gold `B` or `(B)`: the extracted option letter equals it; any other gold (BBH `True`, `valid`, `a b c`): equal after trimming, dropping one final `.`, collapsing spaces and lower-casing | `dlm_metrics::extract_choice_letter` |
//! | exact match, F1 | SQuAD v1.1 | `dlm_metrics::{exact_match, token_f1}` |
//! | accuracy (math) | the last integer of the output equals the reference's | `dlm_metrics::gsm_correct` |
//!
//! Overall: corpus (BLEU, ROUGE-L), micro (MMLU, GSM8K: all questions pooled) or macro
//! (BBH, BBH-NLP, TyDiQA, MGSM: mean over subsets that have scored examples); for macro
//! tasks the micro figure is reported beside it as `micro`.

use std::collections::BTreeMap;

use dlm_metrics::{
    BleuConfig, PyRougeConfig, corpus_bleu, corpus_py_rouge_l, corpus_rouge, exact_match,
    extract_choice_letter, gsm_correct, token_f1,
};

use crate::error::{EvalError, Result};
use crate::example::{Dataset, Example};
use crate::plan::Plan;
use crate::task::{Aggregate, Metric, Task};

/// The scores of one subset.
#[derive(Debug, Clone, PartialEq)]
pub struct SubsetScore {
    /// `None` when nothing was scored (every example skipped).
    pub score: Option<f64>,
    /// Secondary figures (`f1`).
    pub extra: BTreeMap<String, f64>,
    pub scored: usize,
}

/// The scores of a whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub overall: Option<f64>,
    pub extra: BTreeMap<String, f64>,
    pub subsets: Vec<SubsetScore>,
    /// The sacreBLEU signature (BLEU tasks).
    pub signature: Option<String>,
}

/// The BLEU configuration of a task: its tokenizer, lower-cased, exp smoothing.
pub fn bleu_config(task: Task) -> Option<BleuConfig> {
    task.bleu_tokenizer().map(|tokenize| BleuConfig {
        tokenize,
        lowercase: true,
        ..BleuConfig::default()
    })
}

/// Scores the predictions of a plan (`predictions[i]` belongs to `plan.items[i]`).
pub fn score_plan(dataset: &Dataset, plan: &Plan, predictions: &[String]) -> Result<Scores> {
    if predictions.len() != plan.items.len() {
        return Err(EvalError::Setting(format!(
            "{} predictions for {} examples",
            predictions.len(),
            plan.items.len()
        )));
    }
    let mut groups: Vec<Vec<(&Example, &str)>> = vec![Vec::new(); dataset.subsets.len()];
    for (item, p) in plan.items.iter().zip(predictions) {
        let example = dataset
            .subsets
            .get(item.subset)
            .and_then(|s| s.examples.get(item.index))
            .ok_or_else(|| EvalError::Setting("the plan does not belong to this dataset".into()))?;
        groups[item.subset].push((example, p.as_str()));
    }
    score(dataset.task, &groups)
}

/// Scores `subsets`, each a list of `(example, prediction)`.
pub fn score(task: Task, subsets: &[Vec<(&Example, &str)>]) -> Result<Scores> {
    match task.metric() {
        Metric::Bleu => score_bleu(task, subsets),
        Metric::RougeL => score_rouge(subsets),
        Metric::Accuracy | Metric::ExactMatch | Metric::LastInteger => {
            Ok(score_per_example(task, subsets))
        }
    }
}

fn score_bleu(task: Task, subsets: &[Vec<(&Example, &str)>]) -> Result<Scores> {
    let cfg = bleu_config(task).unwrap_or_default();
    let bleu =
        |pairs: &mut dyn Iterator<Item = &(&Example, &str)>| -> Result<Option<(f64, String)>> {
            let (hyps, refs): (Vec<&str>, Vec<&str>) =
                pairs.map(|(e, p)| (*p, e.target.as_str())).unzip();
            if hyps.is_empty() {
                return Ok(None);
            }
            let s = corpus_bleu(&hyps, &refs, &cfg)?;
            Ok(Some((s.score, s.signature)))
        };
    let per = subsets
        .iter()
        .map(|s| {
            Ok(SubsetScore {
                score: bleu(&mut s.iter())?.map(|(x, _)| x),
                extra: BTreeMap::new(),
                scored: s.len(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let overall = bleu(&mut subsets.iter().flatten())?;
    Ok(Scores {
        signature: Some(
            overall
                .as_ref()
                .map_or_else(|| cfg.signature(Some(1)), |(_, sig)| sig.clone()),
        ),
        overall: overall.map(|(x, _)| x),
        extra: BTreeMap::new(),
        subsets: per,
    })
}

/// The `extra` key of rouge-score's ROUGE-L F in ROUGE reports.
pub const ROUGE_SCORE_KEY: &str = "rouge_score";

fn score_rouge(subsets: &[Vec<(&Example, &str)>]) -> Result<Scores> {
    let (hyps, refs): (Vec<&str>, Vec<&str>) = subsets
        .iter()
        .flatten()
        .map(|(e, p)| (*p, e.target.as_str()))
        .unzip();
    // Per-segment ROUGE-L F of both implementations, then means: py-rouge's (the
    // paper's number) as the score, rouge-score's as `rouge_score`.
    let (authors, package): (Vec<f64>, Vec<f64>) = if hyps.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let py = corpus_py_rouge_l(&hyps, &refs, &PyRougeConfig::default())?;
        let rs = corpus_rouge(&hyps, &refs, true)?;
        (
            py.segments.iter().map(|s| s.fmeasure * 100.0).collect(),
            rs.segments.iter().map(|s| s.rouge_l.fmeasure * 100.0).collect(),
        )
    };
    let with_package = |range: std::ops::Range<usize>| -> BTreeMap<String, f64> {
        mean(&package[range]).map(|m| (ROUGE_SCORE_KEY.to_string(), m)).into_iter().collect()
    };
    let mut per = Vec::with_capacity(subsets.len());
    let mut at = 0;
    for s in subsets {
        per.push(SubsetScore {
            score: mean(&authors[at..at + s.len()]),
            extra: with_package(at..at + s.len()),
            scored: s.len(),
        });
        at += s.len();
    }
    Ok(Scores {
        overall: mean(&authors),
        extra: with_package(0..package.len()),
        subsets: per,
        signature: None,
    })
}

/// Tasks scored example by example: accuracy, exact match (+ F1), last integer.
fn score_per_example(task: Task, subsets: &[Vec<(&Example, &str)>]) -> Scores {
    let metric = task.metric();
    let mut all_primary = Vec::new();
    let mut all_f1 = Vec::new();
    let mut per = Vec::with_capacity(subsets.len());
    for s in subsets {
        let primary: Vec<f64> = s
            .iter()
            .map(|(e, p)| 100.0 * example_score(metric, e, p))
            .collect();
        let mut extra = BTreeMap::new();
        if metric == Metric::ExactMatch {
            let f1: Vec<f64> = s
                .iter()
                .map(|(e, p)| 100.0 * token_f1(p, &e.target))
                .collect();
            if let Some(m) = mean(&f1) {
                extra.insert("f1".to_string(), m);
            }
            all_f1.push(f1);
        }
        per.push(SubsetScore {
            score: mean(&primary),
            extra,
            scored: s.len(),
        });
        all_primary.push(primary);
    }
    let micro = mean(&all_primary.concat());
    let mut extra = BTreeMap::new();
    let overall = match task.aggregate() {
        Aggregate::Macro => {
            if let Some(m) = micro {
                extra.insert("micro".to_string(), m);
            }
            if metric == Metric::ExactMatch
                && let Some(f) = macro_mean(&all_f1)
            {
                extra.insert("f1".to_string(), f);
            }
            macro_mean(&all_primary)
        }
        Aggregate::Micro | Aggregate::Corpus => {
            if metric == Metric::ExactMatch
                && let Some(f) = mean(&all_f1.concat())
            {
                extra.insert("f1".to_string(), f);
            }
            micro
        }
    };
    Scores {
        overall,
        extra,
        subsets: per,
        signature: None,
    }
}

/// The score in [0, 1] of one prediction.
fn example_score(metric: Metric, example: &Example, prediction: &str) -> f64 {
    let hit = match metric {
        Metric::Accuracy => choice_is_correct(prediction, &example.target, example.options),
        Metric::LastInteger => gsm_correct(prediction, &example.target),
        Metric::ExactMatch => return exact_match(prediction, &example.target),
        Metric::Bleu | Metric::RougeL => false,
    };
    if hit { 1.0 } else { 0.0 }
}

/// Multiple-choice correctness (see the module table). `options` bounds the letters
/// that count (26 when unknown); it is widened to include the gold letter.
pub fn choice_is_correct(prediction: &str, gold: &str, options: Option<usize>) -> bool {
    match gold_letter(gold) {
        Some(letter) => {
            let n = options
                .unwrap_or(26)
                .max((letter as u8 - b'A') as usize + 1);
            extract_choice_letter(prediction, n) == Some(letter)
        }
        None => normalize_free_answer(prediction) == normalize_free_answer(gold),
    }
}

/// `B` or `(B)` → `B`.
fn gold_letter(gold: &str) -> Option<char> {
    let g = gold.trim();
    let g = g
        .strip_prefix('(')
        .and_then(|g| g.strip_suffix(')'))
        .unwrap_or(g);
    let mut chars = g.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_uppercase() => Some(c),
        _ => None,
    }
}

/// Trim, drop one final `.`, collapse whitespace, lower-case.
fn normalize_free_answer(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_suffix('.').unwrap_or(s);
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Mean of the non-empty groups' means.
fn macro_mean(groups: &[Vec<f64>]) -> Option<f64> {
    let means: Vec<f64> = groups.iter().filter_map(|g| mean(g)).collect();
    mean(&means)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(target: &str, options: Option<usize>) -> Example {
        Example {
            prompt: String::new(),
            target: target.to_string(),
            options,
        }
    }

    #[test]
    fn choices() {
        assert!(choice_is_correct(" B", "B", Some(4)));
        assert!(choice_is_correct("(B) because", "(B)", Some(2)));
        assert!(!choice_is_correct("C", "B", Some(4)));
        // The gold letter is always in range even when counting found fewer options.
        assert!(choice_is_correct("E", "E", Some(2)));
        assert!(choice_is_correct("valid.", "valid", None));
        assert!(choice_is_correct(" a  b ", "a b", None));
        assert!(!choice_is_correct("invalid", "valid", None));
        assert!(choice_is_correct("] ]", "] ]", None));
        assert!(!choice_is_correct(")", "] ]", None));
    }

    #[test]
    fn macro_and_micro() {
        // Subset 1: 1 of 1 right (100); subset 2: 1 of 3 right (33.3).
        // Macro = (100 + 33.3)/2 = 66.7; micro = 2/4 = 50.
        let (a, b, c) = (ex("A", Some(4)), ex("B", Some(4)), ex("C", Some(4)));
        let s1 = vec![(&a, "A")];
        let s2 = vec![(&a, "A"), (&b, "A"), (&c, "A")];
        let bbh = score(Task::Bbh, &[s1.clone(), s2.clone()]).unwrap();
        assert!((bbh.overall.unwrap() - 200.0 / 3.0).abs() < 1e-9);
        assert!((bbh.extra["micro"] - 50.0).abs() < 1e-9);
        let mmlu = score(Task::Mmlu, &[s1, s2]).unwrap();
        assert!((mmlu.overall.unwrap() - 50.0).abs() < 1e-9);
        // An empty subset has no score and is left out of the macro mean.
        let none = score(Task::Bbh, &[vec![], vec![(&a, "A")]]).unwrap();
        assert_eq!(none.subsets[0].score, None);
        assert_eq!(none.overall, Some(100.0));
    }

    #[test]
    fn bleu_is_lowercased_with_the_task_tokenizer() {
        let r = ex("It's That Pyramid.", None);
        let s = score(Task::Iwslt14DeEn, &[vec![(&r, "it's that pyramid.")]]).unwrap();
        assert!((s.overall.unwrap() - 100.0).abs() < 1e-9);
        let sig = s.signature.unwrap();
        assert!(sig.contains("case:lc") && sig.contains("tok:13a"), "{sig}");
        let w = score(Task::Wmt14EnDe, &[vec![(&r, "x")]]).unwrap();
        assert!(w.signature.unwrap().contains("tok:intl"));
        let empty = score(Task::Iwslt14DeEn, &[vec![]]).unwrap();
        assert_eq!(empty.overall, None);
        assert!(empty.signature.is_some());
    }

    #[test]
    fn qa_and_math() {
        let r = ex("Maurice Garin", None);
        let s = score(Task::TydiQa, &[vec![(&r, "maurice garin."), (&r, "garin")]]).unwrap();
        // EM: 1, 0 → 50; F1: 1, 2·1·0.5/1.5 = 2/3 → (100 + 66.7)/2.
        assert_eq!(s.overall, Some(50.0));
        assert!((s.extra["f1"] - 250.0 / 3.0).abs() < 1e-9);
        let m = ex("# # 18", None);
        let g = score(Task::Gsm8k, &[vec![(&m, "so 18."), (&m, "17")]]).unwrap();
        assert_eq!(g.overall, Some(50.0));
    }

    #[test]
    fn rouge_means() {
        let r = ex("police arrest man", None);
        let s = score(
            Task::Gigaword,
            &[vec![(&r, "police arrest man")], vec![(&r, "nothing")]],
        )
        .unwrap();
        assert_eq!(s.subsets[0].score, Some(100.0));
        assert_eq!(s.subsets[1].score, Some(0.0));
        assert_eq!(s.overall, Some(50.0));
        assert_eq!(s.extra[ROUGE_SCORE_KEY], 50.0);
        // Where the two differ: py-rouge maps "were" to its WordNet base form "be" and
        // stems with the original Porter algorithm; rouge-score keeps "were".
        let r = ex("they were running", None);
        let s = score(Task::Gigaword, &[vec![(&r, "they be running")]]).unwrap();
        assert_eq!(s.overall, Some(100.0));
        let rs = s.extra[ROUGE_SCORE_KEY];
        assert!((rs - 200.0 / 3.0).abs() < 1e-9, "{rs}");
    }
}
