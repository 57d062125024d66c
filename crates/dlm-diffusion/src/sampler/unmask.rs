//! Unmask-only strategies (SPEC §4 "other strategies", plus LLaDA and Fast-dLLM): decoded
//! tokens are never re-masked; each step chooses which masked slots to fill.

use super::config::{Parallel, Remasking};
use super::predict::Prediction;
use super::state::Row;
use rand::Rng;

/// CMLM step: each masked slot is filled with probability `prob = 1/(K-s+1)` (one coin per
/// slot); as in the released code the stored scores of all slots become this step's scores.
pub(crate) fn cmlm_update(row: &mut Row, preds: &[Prediction], prob: f64, rng: &mut impl Rng) {
    for (j, p) in preds.iter().enumerate() {
        let coin: f64 = rng.random();
        if row.masked[j] && coin < prob {
            row.decode(j, p.token, p.logp);
        }
        row.scores[j] = p.logp;
    }
}

/// AR step: fill the leftmost masked slot; stored scores of all slots become this step's.
pub(crate) fn ar_update(row: &mut Row, preds: &[Prediction]) {
    if let Some(j) = row.masked.iter().position(|&m| m) {
        row.decode(j, preds[j].token, preds[j].logp);
    }
    for (j, p) in preds.iter().enumerate() {
        row.scores[j] = p.logp;
    }
}

/// Indices of `confidence` ordered by descending value, ties by index (the candidates are
/// in position order, so ties go to the earlier position).
pub(crate) fn ranked(confidence: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..confidence.len()).collect();
    order.sort_by(|&a, &b| confidence[b].total_cmp(&confidence[a]).then(a.cmp(&b)));
    order
}

/// LLaDA's step (`generate()` in ML-GSAI/LLaDA's `generate.py`): transfer the `count`
/// highest-ranked `candidates` (the masked slots up to the current block's end) —
/// by the probability of the predicted token (`low_confidence`; ranking by its log is the
/// same order) or by a uniform draw each (`random`). A transferred `<mask>` prediction
/// leaves its slot masked.
#[allow(clippy::too_many_arguments)]
pub(crate) fn low_confidence_update(
    row: &mut Row,
    candidates: &[usize],
    preds: &[Prediction],
    count: usize,
    remasking: Remasking,
    rng: &mut impl Rng,
    mask: u32,
) {
    let confidence: Vec<f64> = match remasking {
        Remasking::LowConfidence => preds.iter().map(|p| p.confidence as f64).collect(),
        Remasking::Random => candidates.iter().map(|_| rng.random::<f64>()).collect(),
    };
    for i in ranked(&confidence).into_iter().take(count) {
        row.transfer(candidates[i], preds[i].token, preds[i].logp, mask);
    }
}

/// Fast-dLLM's step (`get_transfer_index` with a threshold, `get_transfer_index_dynamic`
/// with a factor): transfer the most confident of `candidates` and those the rule admits
/// (see [`Parallel`]); the probabilities are `exp(log p)` in f64, as the reference's are
/// an f64 softmax. A transferred `<mask>` prediction leaves its slot masked. True when
/// some slot was decoded.
pub(crate) fn parallel_update(row: &mut Row, candidates: &[usize], preds: &[Prediction], rule: Parallel, mask: u32) -> bool {
    let confidence: Vec<f64> = preds.iter().map(|p| (p.confidence as f64).exp()).collect();
    let order = ranked(&confidence);
    let take: Vec<usize> = match rule {
        // `topk` of every candidate, then those after the first with confidence < threshold
        // dropped one by one.
        Parallel::Threshold(threshold) => {
            order.iter().enumerate().filter(|&(rank, &i)| rank == 0 || confidence[i] >= threshold).map(|(_, &i)| i).collect()
        }
        Parallel::Factor(factor) => {
            let n = factor_count(&order.iter().map(|&i| confidence[i]).collect::<Vec<_>>(), factor);
            order[..n].to_vec()
        }
    };
    let mut decoded = false;
    for i in take {
        decoded |= row.transfer(candidates[i], preds[i].token, preds[i].logp, mask);
    }
    decoded
}

/// How many of the `sorted` (descending) confidences `get_transfer_index_dynamic`
/// transfers: `threshs[i] = 1 − factor / (i + 2)` (`n = i + 1` tokens, `1 − factor/(n+1)`)
/// with `threshs[0] = −1`; the loop stops at the first i with `sorted[i] < threshs[i]`
/// (Python leaves the loop variable at the last index when nothing stops it), and a stop
/// at 0 or at the last index is moved one on.
pub(crate) fn factor_count(sorted: &[f64], factor: f64) -> usize {
    let m = sorted.len();
    if m == 0 {
        return 0;
    }
    let thresh = |i: usize| if i == 0 { -1.0 } else { 1.0 - factor / (i as f64 + 2.0) };
    let mut top = 0;
    for (i, &c) in sorted.iter().enumerate() {
        top = i;
        if c < thresh(i) {
            break;
        }
    }
    if top == 0 || top == m - 1 { top + 1 } else { top }
}

/// Generation slots of block `b` of length `len` in a row of `n` slots.
pub(crate) fn block_slots(b: usize, len: usize, n: usize) -> std::ops::Range<usize> {
    (b * len).min(n)..((b + 1) * len).min(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvas::{Canvas, SpecialIds};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SP: SpecialIds = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 99 };

    fn row(n: usize) -> Row {
        Row::new(&Canvas::new(&[0], n, SP).unwrap())
    }
    fn preds(logps: &[f32]) -> Vec<Prediction> {
        logps.iter().enumerate().map(|(i, &logp)| Prediction::new(10 + i as u32, logp)).collect()
    }

    #[test]
    fn ar_fills_left_to_right() {
        let mut r = row(3);
        let p = preds(&[-1.0, -0.1, -2.0]);
        ar_update(&mut r, &p);
        ar_update(&mut r, &p);
        assert_eq!(r.masked, vec![false, false, true]);
        assert_eq!(r.tokens, vec![0, 10, 11, 99, 2]);
    }

    #[test]
    fn cmlm_last_step_fills_everything() {
        // At s = K the probability is 1/(K-K+1) = 1: every masked slot is filled.
        let mut r = row(4);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        cmlm_update(&mut r, &preds(&[-1.0; 4]), 1.0, &mut rng);
        assert_eq!(r.masked_count(), 0);
    }

    #[test]
    fn low_confidence_picks_most_confident() {
        // confidences (log p): s0 -1.0, s1 -0.1, s2 -2.0, s3 -0.1; count 2 → s1, s3 (tie
        // broken by position).
        let mut r = row(4);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        low_confidence_update(&mut r, &[0, 1, 2, 3], &preds(&[-1.0, -0.1, -2.0, -0.1]), 2, Remasking::LowConfidence, &mut rng, SP.mask);
        assert_eq!(r.masked, vec![true, false, true, false]);
    }

    #[test]
    fn a_transferred_mask_prediction_stays_masked() {
        // LLaDA's x[transfer] = x0[transfer] with x0 = <mask> at s1 (the most confident,
        // log p −0.1) and count 2: s1 and s3 are transferred, s1 writes <mask> and so stays
        // masked (score untouched), s3 is decoded; s1 competes again at the next step,
        // where count 1 takes it (now predicted 20 at −0.5, above s0 and s2).
        let mut r = row(4);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut p = preds(&[-1.0, -0.1, -2.0, -0.3]);
        p[1].token = SP.mask;
        low_confidence_update(&mut r, &[0, 1, 2, 3], &p, 2, Remasking::LowConfidence, &mut rng, SP.mask);
        assert_eq!(r.masked, vec![true, true, true, false]);
        assert_eq!(r.tokens, vec![0, 99, 99, 99, 13, 2]);
        assert_eq!(r.scores, vec![0.0, 0.0, 0.0, -0.3]);
        let again = vec![Prediction::new(10, -1.0), Prediction::new(20, -0.5), Prediction::new(12, -2.0)];
        low_confidence_update(&mut r, &[0, 1, 2], &again, 1, Remasking::LowConfidence, &mut rng, SP.mask);
        assert_eq!(r.masked, vec![true, false, true, false]);
        assert_eq!(r.token(1), 20);
        // Fast-dLLM: a step whose transfers are all <mask> decodes nothing.
        let mut r = row(2);
        let stuck = vec![Prediction::new(SP.mask, -0.01), Prediction::new(11, -3.0)];
        assert!(!parallel_update(&mut r, &[0, 1], &stuck, Parallel::Threshold(0.9), SP.mask));
        assert_eq!(r.masked_count(), 2);
    }

    #[test]
    fn random_remasking_fills_count_positions() {
        let mut r = row(6);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        low_confidence_update(&mut r, &[0, 1, 2, 3, 4, 5], &preds(&[-1.0; 6]), 4, Remasking::Random, &mut rng, SP.mask);
        assert_eq!(r.masked_count(), 2);
    }

    #[test]
    fn threshold_takes_top_one_and_all_confident() {
        // p = exp(log p): s0 0.37, s1 0.95, s2 0.92, s3 0.13; threshold 0.9 → s1, s2.
        let mut r = row(4);
        let lp = [-1.0f32, 0.95f32.ln(), 0.92f32.ln(), -2.0];
        assert!(parallel_update(&mut r, &[0, 1, 2, 3], &preds(&lp), Parallel::Threshold(0.9), SP.mask));
        assert_eq!(r.masked, vec![true, false, false, true]);
        // Nothing above the threshold: the single most confident is still filled.
        let mut r = row(2);
        parallel_update(&mut r, &[0, 1], &preds(&[-3.0, -2.0]), Parallel::Threshold(0.9), SP.mask);
        assert_eq!(r.masked, vec![true, false]);
        // The boundary: a confidence equal to the threshold is kept (dropped only when
        // `confidence < threshold`). exp(ln 0.5) in f64 from the f32 log is 0.5 exactly
        // here (ln 0.5 = −0.6931472 in f32, exp → 0.49999997 or 0.5); take the threshold
        // to be that very value.
        let c = ((0.5f32).ln() as f64).exp();
        let mut r = row(2);
        parallel_update(&mut r, &[0, 1], &preds(&[-0.01, 0.5f32.ln()]), Parallel::Threshold(c), SP.mask);
        assert_eq!(r.masked, vec![false, false]);
    }

    #[test]
    fn factor_rule_follows_get_transfer_index_dynamic() {
        // factor 1: threshs = [−1, 1 − 1/3, 1 − 1/4, 1 − 1/5, …] = [−1, 0.667, 0.75, 0.8, …].
        // sorted [0.9, 0.8, 0.7, 0.6, 0.5]: i=1 0.8 ≥ 0.667, i=2 0.7 < 0.75 → stop at 2 → 2.
        assert_eq!(factor_count(&[0.9, 0.8, 0.7, 0.6, 0.5], 1.0), 2);
        // sorted [0.9, 0.5, …]: stop at i=1 → 1.
        assert_eq!(factor_count(&[0.9, 0.5, 0.4], 1.0), 1);
        // Everything passes: the loop ends at the last index 3, moved on to 4 (all).
        assert_eq!(factor_count(&[0.99, 0.98, 0.97, 0.96], 1.0), 4);
        // The first failure at the last index (0.7 < 0.75 at i=2 of 3) is also moved on:
        // all 3 are transferred (the reference's quirk).
        assert_eq!(factor_count(&[0.9, 0.8, 0.7], 1.0), 3);
        // One candidate: 1. A larger factor admits more: factor 2 → threshs [−1, 0.333,
        // 0.5, 0.6, 0.667]; [0.9, 0.8, 0.7, 0.6, 0.5]: i=4 0.5 < 0.667 → the last → 5.
        assert_eq!(factor_count(&[0.3], 1.0), 1);
        assert_eq!(factor_count(&[0.9, 0.8, 0.7, 0.6, 0.5], 2.0), 5);
        assert_eq!(factor_count(&[0.9, 0.8, 0.7, 0.55, 0.5, 0.4], 2.0), 3);
        // Through parallel_update: confidences 0.9, 0.8, 0.7, 0.6, 0.5 at s4, s0, s3, s1, s2.
        let mut r = row(5);
        let lp: Vec<f32> = [0.8f32, 0.6, 0.5, 0.7, 0.9].iter().map(|p| p.ln()).collect();
        parallel_update(&mut r, &[0, 1, 2, 3, 4], &preds(&lp), Parallel::Factor(1.0), SP.mask);
        assert_eq!(r.masked, vec![false, true, true, true, false]);
    }

    #[test]
    fn blocks_cover_the_slots() {
        assert_eq!(block_slots(0, 4, 10), 0..4);
        assert_eq!(block_slots(2, 4, 10), 8..10);
        assert_eq!(block_slots(3, 4, 10), 10..10);
    }
}
