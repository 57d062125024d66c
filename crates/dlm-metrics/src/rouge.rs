//! ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum exactly as `rouge-score==0.1.2`'s
//! `RougeScorer(['rouge1','rouge2','rougeL','rougeLsum'], use_stemmer=...)`:
//!
//! * tokens: lowercase, every character outside `[a-z0-9]` becomes a space, split, Porter
//!   stem ([`crate::porter`]) tokens longer than 3 characters when stemming is on;
//! * ROUGE-N: clipped n-gram overlap; P = overlap / max(#hyp n-grams, 1),
//!   R = overlap / max(#ref n-grams, 1);
//! * ROUGE-L: LCS length over hypothesis / reference lengths;
//! * ROUGE-Lsum: summary-level LCS (Lin 2004, §3.2) over sentences split on `\n`, the
//!   union LCS of each reference sentence against all hypothesis sentences, with token
//!   counts preventing double counting (as ROUGE-1.5.5);
//! * F = 2PR / (P + R) (0 when P + R = 0).
//!
//! The corpus figure is the mean of the per-segment F-measures, which is what users of
//! `rouge_scorer` compute (`np.mean([s[k].fmeasure for s in scores])`).

use crate::MetricError;
use crate::porter;
use std::collections::HashMap;

/// Precision, recall and F-measure of one ROUGE variant (rouge-score's `Score` tuple).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct RougeScore {
    /// precision in [0, 1]
    pub precision: f64,
    /// recall in [0, 1]
    pub recall: f64,
    /// F1 in [0, 1]
    pub fmeasure: f64,
}

impl RougeScore {
    fn new(precision: f64, recall: f64) -> Self {
        // scoring.fmeasure
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// The four ROUGE variants of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct RougeScores {
    /// ROUGE-1
    pub rouge1: RougeScore,
    /// ROUGE-2
    pub rouge2: RougeScore,
    /// ROUGE-L
    #[serde(rename = "rougeL")]
    pub rouge_l: RougeScore,
    /// ROUGE-Lsum
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: RougeScore,
}

/// Mean F-measure of each variant over a corpus, plus the per-segment scores.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorpusRouge {
    /// mean ROUGE-1 F
    pub rouge1: f64,
    /// mean ROUGE-2 F
    pub rouge2: f64,
    /// mean ROUGE-L F
    #[serde(rename = "rougeL")]
    pub rouge_l: f64,
    /// mean ROUGE-Lsum F
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: f64,
    /// per-segment scores, in input order
    pub segments: Vec<RougeScores>,
}

/// rouge-score's `tokenize.tokenize(text, stemmer)`.
pub fn rouge_tokenize(text: &str, use_stemmer: bool) -> Vec<String> {
    let lower = text.to_lowercase();
    let replaced: String = lower
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                ' '
            }
        })
        .collect();
    replaced
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(|t| {
            if use_stemmer && t.len() > 3 {
                porter::stem(t)
            } else {
                t.to_string()
            }
        })
        .filter(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        .collect()
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], u64> {
    let mut m = HashMap::new();
    if n > 0 && tokens.len() >= n {
        for w in tokens.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// `_score_ngrams` on token lists.
fn score_ngrams(hyp: &[String], reference: &[String], n: usize) -> RougeScore {
    let r = ngram_counts(reference, n);
    let h = ngram_counts(hyp, n);
    let overlap: u64 = r
        .iter()
        .map(|(k, &c)| c.min(h.get(k).copied().unwrap_or(0)))
        .sum();
    let r_total: u64 = r.values().sum();
    let h_total: u64 = h.values().sum();
    RougeScore::new(
        overlap as f64 / h_total.max(1) as f64,
        overlap as f64 / r_total.max(1) as f64,
    )
}

/// `_lcs_table(ref, can)`: `t[i][j]` = LCS length of `ref[..i]` and `can[..j]`.
fn lcs_table(r: &[String], c: &[String]) -> Vec<Vec<u32>> {
    let mut t = vec![vec![0u32; c.len() + 1]; r.len() + 1];
    for i in 1..=r.len() {
        for j in 1..=c.len() {
            t[i][j] = if r[i - 1] == c[j - 1] {
                t[i - 1][j - 1] + 1
            } else {
                t[i - 1][j].max(t[i][j - 1])
            };
        }
    }
    t
}

/// `_score_lcs(target, prediction)`.
fn score_lcs(hyp: &[String], reference: &[String]) -> RougeScore {
    if hyp.is_empty() || reference.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_table(reference, hyp)[reference.len()][hyp.len()] as f64;
    RougeScore::new(lcs / hyp.len() as f64, lcs / reference.len() as f64)
}

/// `lcs_ind` / `_backtrack_norec`: indices into `r` of one LCS (rouge-score's tie-break:
/// move left only when strictly better).
fn lcs_indices(r: &[String], c: &[String]) -> Vec<usize> {
    let t = lcs_table(r, c);
    let (mut i, mut j) = (r.len(), c.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if r[i - 1] == c[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i][j - 1] > t[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

/// `_summary_level_lcs(ref_sent, can_sent)`.
fn summary_level_lcs(ref_sents: &[Vec<String>], hyp_sents: &[Vec<String>]) -> RougeScore {
    if ref_sents.is_empty() || hyp_sents.is_empty() {
        return RougeScore::default();
    }
    let m: usize = ref_sents.iter().map(Vec::len).sum();
    let n: usize = hyp_sents.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return RougeScore::default();
    }
    let mut cnt_r: HashMap<&str, i64> = HashMap::new();
    let mut cnt_c: HashMap<&str, i64> = HashMap::new();
    for s in ref_sents {
        for t in s {
            *cnt_r.entry(t).or_insert(0) += 1;
        }
    }
    for s in hyp_sents {
        for t in s {
            *cnt_c.entry(t).or_insert(0) += 1;
        }
    }
    let mut hits = 0u64;
    for r in ref_sents {
        // _union_lcs: sorted union of the LCS indices against every hypothesis sentence
        let mut union: Vec<usize> = hyp_sents.iter().flat_map(|c| lcs_indices(r, c)).collect();
        union.sort_unstable();
        union.dedup();
        for idx in union {
            let t = r[idx].as_str();
            let (cc, cr) = (
                cnt_c.get(t).copied().unwrap_or(0),
                cnt_r.get(t).copied().unwrap_or(0),
            );
            if cc > 0 && cr > 0 {
                hits += 1;
                cnt_c.insert(t, cc - 1);
                cnt_r.insert(t, cr - 1);
            }
        }
    }
    RougeScore::new(hits as f64 / n as f64, hits as f64 / m as f64)
}

/// rouge-score's sentence split for Lsum (`split_summaries=False`): on `\n`, dropping
/// empty strings (but keeping whitespace-only ones, which tokenize to nothing).
fn lsum_sentences(text: &str, use_stemmer: bool) -> Vec<Vec<String>> {
    text.split('\n')
        .filter(|s| !s.is_empty())
        .map(|s| rouge_tokenize(s, use_stemmer))
        .collect()
}

/// ROUGE-N of one segment (argument order: hypothesis first, unlike rouge-score's
/// `score(target, prediction)`).
pub fn rouge_n(hyp: &str, reference: &str, n: usize, use_stemmer: bool) -> RougeScore {
    score_ngrams(
        &rouge_tokenize(hyp, use_stemmer),
        &rouge_tokenize(reference, use_stemmer),
        n,
    )
}

/// ROUGE-L of one segment.
pub fn rouge_l(hyp: &str, reference: &str, use_stemmer: bool) -> RougeScore {
    score_lcs(
        &rouge_tokenize(hyp, use_stemmer),
        &rouge_tokenize(reference, use_stemmer),
    )
}

/// ROUGE-Lsum of one segment (sentences separated by `\n`).
pub fn rouge_lsum(hyp: &str, reference: &str, use_stemmer: bool) -> RougeScore {
    summary_level_lcs(
        &lsum_sentences(reference, use_stemmer),
        &lsum_sentences(hyp, use_stemmer),
    )
}

/// All four variants of one segment.
pub fn rouge_scores(hyp: &str, reference: &str, use_stemmer: bool) -> RougeScores {
    let h = rouge_tokenize(hyp, use_stemmer);
    let r = rouge_tokenize(reference, use_stemmer);
    RougeScores {
        rouge1: score_ngrams(&h, &r, 1),
        rouge2: score_ngrams(&h, &r, 2),
        rouge_l: score_lcs(&h, &r),
        rouge_lsum: rouge_lsum(hyp, reference, use_stemmer),
    }
}

/// Per-segment ROUGE and the mean F-measure of each variant over the corpus.
pub fn corpus_rouge<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    refs: &[R],
    use_stemmer: bool,
) -> Result<CorpusRouge, MetricError> {
    crate::references::check_pairs(hyps, refs)?;
    let segments: Vec<RougeScores> = hyps
        .iter()
        .zip(refs)
        .map(|(h, r)| rouge_scores(h.as_ref(), r.as_ref(), use_stemmer))
        .collect();
    let mean =
        |f: fn(&RougeScores) -> f64| segments.iter().map(f).sum::<f64>() / segments.len() as f64;
    Ok(CorpusRouge {
        rouge1: mean(|s| s.rouge1.fmeasure),
        rouge2: mean(|s| s.rouge2.fmeasure),
        rouge_l: mean(|s| s.rouge_l.fmeasure),
        rouge_lsum: mean(|s| s.rouge_lsum.fmeasure),
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn tokenizer() {
        // lowercase, non-alphanumerics -> spaces, "it's" -> "it" "s"; non-ASCII letters drop
        assert_eq!(
            rouge_tokenize("It's Café-2!", false),
            vec!["it", "s", "caf", "2"]
        );
        // stemming only for tokens longer than 3 chars: "cats" -> "cat", "was" untouched
        assert_eq!(
            rouge_tokenize("Running cats was", true),
            vec!["run", "cat", "was"]
        );
        assert!(rouge_tokenize("?!\r\n", true).is_empty());
        assert!(rouge_tokenize("日本語", true).is_empty());
    }

    #[test]
    fn readme_example() {
        // rouge-score README: score('The quick brown fox jumps over the lazy dog',
        //                           'The quick brown dog jumps on the log.')
        // rouge1: overlap {the:2, quick, brown, dog, jumps} = 6; P = 6/8, R = 6/9
        let s = rouge_scores(
            "The quick brown dog jumps on the log.",
            "The quick brown fox jumps over the lazy dog",
            false,
        );
        assert!(close(s.rouge1.precision, 0.75) && close(s.rouge1.recall, 6.0 / 9.0));
        // rougeL: LCS "the quick brown jumps the" = 5; P = 5/8, R = 5/9
        assert!(close(s.rouge_l.precision, 5.0 / 8.0) && close(s.rouge_l.recall, 5.0 / 9.0));
        // rouge2: bigrams in common: the-quick, quick-brown = 2; P = 2/7, R = 2/8
        assert!(close(s.rouge2.precision, 2.0 / 7.0) && close(s.rouge2.recall, 0.25));
        // one line each: Lsum == L
        assert_eq!(s.rouge_lsum, s.rouge_l);
    }

    #[test]
    fn lsum_union_lcs() {
        // ROUGE paper §3.2 example: r = "w1 w2 w3 w4 w5", c1 = "w1 w2 w6 w7 w8",
        // c2 = "w1 w3 w8 w9 w5". LCS(r,c1) = w1 w2, LCS(r,c2) = w1 w3 w5;
        // union = w1 w2 w3 w5 -> 4 hits; R = 4/5, P = 4/10.
        let s = rouge_lsum("w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5", "w1 w2 w3 w4 w5", false);
        assert!(close(s.recall, 0.8) && close(s.precision, 0.4));
    }

    #[test]
    fn empty_and_crlf() {
        let z = RougeScore::default();
        let s = rouge_scores("", "a b", true);
        assert_eq!((s.rouge1, s.rouge2, s.rouge_l, s.rouge_lsum), (z, z, z, z));
        // CRLF: the \r is non-alphanumeric, so a CRLF line scores like the LF one
        assert_eq!(
            rouge_scores("a b\r\nc", "a b\nc", false),
            rouge_scores("a b\nc", "a b\nc", false)
        );
        // ROUGE-2 of one-token texts: no bigrams, P = R = 0 / max(0, 1) = 0
        assert_eq!(rouge_n("a", "a", 2, false), z);
        let none: [&str; 0] = [];
        assert_eq!(
            corpus_rouge(&none, &none, true),
            Err(MetricError::EmptyCorpus)
        );
    }

    #[test]
    fn corpus_mean() {
        // segment F1s for rouge1: 1.0 and 0.0 -> mean 0.5
        let c = corpus_rouge(&["a b", "c"], &["a b", "d"], false).unwrap();
        assert!(close(c.rouge1, 0.5) && close(c.rouge_l, 0.5));
        assert_eq!(c.segments.len(), 2);
    }
}
