//! Reference sets of a corpus, shared by BLEU and chrF: one reference per hypothesis as a
//! set, and the checks and reference count sacreBLEU's signature reports (`nrefs:N`, or
//! `nrefs:var` when segments have different numbers of references).

use crate::MetricError;

/// One reference per hypothesis, as the reference sets the `*_multi` functions take.
pub(crate) fn one_reference_each<'a, H, R: AsRef<str>>(hyps: &[H], refs: &'a [R]) -> Result<Vec<[&'a str; 1]>, MetricError> {
    if hyps.len() != refs.len() {
        return Err(MetricError::LengthMismatch { hyps: hyps.len(), refs: refs.len() });
    }
    Ok(refs.iter().map(|r| [r.as_ref()]).collect())
}

/// Checks a corpus of one reference per hypothesis (ROUGE): as many references as
/// hypotheses, and at least one of each.
pub(crate) fn check_pairs<H, R: AsRef<str>>(hyps: &[H], refs: &[R]) -> Result<(), MetricError> {
    reference_count(hyps, &one_reference_each(hyps, refs)?).map(|_| ())
}

/// Checks that there is one non-empty reference set per hypothesis and a non-empty corpus;
/// returns `Some(n)` when every set has `n` references, `None` when the counts vary.
pub(crate) fn reference_count<H, R: AsRef<[S]>, S>(hyps: &[H], refs: &[R]) -> Result<Option<usize>, MetricError> {
    if hyps.len() != refs.len() {
        return Err(MetricError::LengthMismatch { hyps: hyps.len(), refs: refs.len() });
    }
    if hyps.is_empty() {
        return Err(MetricError::EmptyCorpus);
    }
    if let Some(index) = refs.iter().position(|r| r.as_ref().is_empty()) {
        return Err(MetricError::NoReference { index });
    }
    let mut counts = refs.iter().map(|r| r.as_ref().len());
    let first = counts.next();
    Ok(if counts.all(|n| Some(n) == first) { first } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_errors() {
        let h = ["a", "b"];
        assert_eq!(reference_count(&h, &[vec!["x"], vec!["y"]]).unwrap(), Some(1));
        assert_eq!(reference_count(&h, &[vec!["x", "z"], vec!["y"]]).unwrap(), None);
        assert!(matches!(reference_count(&h, &[vec!["x"], vec![]]), Err(MetricError::NoReference { index: 1 })));
        assert!(matches!(reference_count(&h, &[vec!["x"]]), Err(MetricError::LengthMismatch { hyps: 2, refs: 1 })));
        let none: [&str; 0] = [];
        let no_refs: [Vec<&str>; 0] = [];
        assert!(matches!(reference_count(&none, &no_refs), Err(MetricError::EmptyCorpus)));
    }
}
