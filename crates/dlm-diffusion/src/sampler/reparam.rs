//! One step of reparameterized top-k decoding (SPEC §4.2-4; RDM Algorithm 2 as released):
//! rank every generation slot by this step's score, take the k lowest (`score < sorted[k]`),
//! and update the canvas under the `uncond` or `cond` rule.

use super::config::Update;
use super::predict::Prediction;
use super::state::Row;

/// `lowest[j] = rank[j] < sorted(rank)[k]`: exactly the k lowest when there are no ties at
/// the cut, fewer otherwise. Non-generation positions are ranked at +1000 by the reference,
/// so for `k ≥ N` the cut lies among them and every slot is selected.
pub(crate) fn lowest_k(rank: &[f32], k: usize) -> Vec<bool> {
    if k >= rank.len() {
        return vec![true; rank.len()];
    }
    let mut sorted = rank.to_vec();
    sorted.sort_by(f32::total_cmp);
    let cut = sorted[k];
    rank.iter().map(|&r| r < cut).collect()
}

/// The released code's Gumbel noise, `-ln(-ln(u + 1e-8) + 1e-8)`, in f32.
pub(crate) fn gumbel(u: f32) -> f32 {
    -(-(u + 1e-8).ln() + 1e-8).ln()
}

/// Applies one step to a row given this step's prediction for every slot and the slots
/// selected by [`lowest_k`].
///
/// * masked & selected → stays masked (score −∞);
/// * masked & not selected → takes the new token and its score;
/// * decoded & not selected → keeps its token and stored score;
/// * decoded & selected → re-masked under `uncond`; under `cond` only if the new token
///   equals the old one and the new score is below the stored one.
pub(crate) fn reparam_update(row: &mut Row, preds: &[Prediction], lowest: &[bool], update: Update, mask: u32) {
    for j in 0..row.n() {
        let p = preds[j];
        if row.masked[j] {
            if lowest[j] {
                row.remask(j, mask);
            } else {
                row.decode(j, p.token, p.logp);
            }
        } else if lowest[j] {
            let remask = match update {
                Update::Uncond => true,
                Update::Cond => p.token == row.token(j) && p.logp < row.scores[j],
            };
            if remask {
                row.remask(j, mask);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvas::{Canvas, SpecialIds};

    const SP: SpecialIds = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 99 };

    fn p(token: u32, logp: f32) -> Prediction {
        Prediction::new(token, logp)
    }

    #[test]
    fn lowest_k_takes_strictly_below_the_kth() {
        // sorted = [-3, -2, -2, -1]; k=1 → cut -2 → only -3; k=2 → cut -2 → still only -3
        // (tie at the cut); k=3 → cut -1 → -3, -2, -2; k=0 → cut -3 → none.
        let rank = [-2.0, -1.0, -3.0, -2.0];
        assert_eq!(lowest_k(&rank, 1), vec![false, false, true, false]);
        assert_eq!(lowest_k(&rank, 2), vec![false, false, true, false]);
        assert_eq!(lowest_k(&rank, 3), vec![true, false, true, true]);
        assert_eq!(lowest_k(&rank, 0), vec![false; 4]);
        assert_eq!(lowest_k(&rank, 4), vec![true; 4]);
    }

    /// A row `<s> a | s0 s1 s2 s3 | </s>` where s0, s1 are decoded (tokens 10, 11 with
    /// stored scores -1.0, -0.5) and s2, s3 are masked.
    fn half_decoded() -> Row {
        let mut row = Row::new(&Canvas::new(&[0, 5], 4, SP).unwrap());
        row.decode(0, 10, -1.0);
        row.decode(1, 11, -0.5);
        row
    }

    // This step's predictions:   s0: 10 @ -2.0   s1: 12 @ -3.0   s2: 13 @ -0.1   s3: 14 @ -4.0
    // Ranking (ascending): s3 (-4) < s1 (-3) < s0 (-2) < s2 (-0.1); k = 2 → {s3, s1}.
    fn step_preds() -> Vec<Prediction> {
        vec![p(10, -2.0), p(12, -3.0), p(13, -0.1), p(14, -4.0)]
    }

    #[test]
    fn uncond_remasks_exactly_the_k_lowest() {
        // s0: decoded, not lowest → keeps 10 @ -1.0
        // s1: decoded, lowest → re-masked (uncond), score -inf
        // s2: masked, not lowest → takes 13 @ -0.1
        // s3: masked, lowest → stays masked
        let mut row = half_decoded();
        let lowest = lowest_k(&step_preds().iter().map(|p| p.logp).collect::<Vec<_>>(), 2);
        reparam_update(&mut row, &step_preds(), &lowest, Update::Uncond, SP.mask);
        assert_eq!(row.tokens, vec![0, 5, 10, 99, 13, 99, 2]);
        assert_eq!(row.masked, vec![false, true, false, true]);
        assert_eq!(row.scores, vec![-1.0, f32::NEG_INFINITY, -0.1, f32::NEG_INFINITY]);
    }

    #[test]
    fn cond_remasks_only_same_token_with_lower_score() {
        // k = 3 → {s3, s1, s0}.
        // s0: lowest, new token 10 == old 10 and -2.0 < stored -1.0 → re-masked
        // s1: lowest, new token 12 != old 11 → kept as 11 @ -0.5
        // s2: masked, not lowest → 13 @ -0.1;  s3: masked, lowest → stays masked
        let mut row = half_decoded();
        let lowest = lowest_k(&step_preds().iter().map(|p| p.logp).collect::<Vec<_>>(), 3);
        reparam_update(&mut row, &step_preds(), &lowest, Update::Cond, SP.mask);
        assert_eq!(row.tokens, vec![0, 5, 99, 11, 13, 99, 2]);
        assert_eq!(row.masked, vec![true, false, false, true]);
        assert_eq!(row.scores, vec![f32::NEG_INFINITY, -0.5, -0.1, f32::NEG_INFINITY]);
        // The same step under uncond re-masks s0 and s1 both.
        let mut row = half_decoded();
        reparam_update(&mut row, &step_preds(), &lowest, Update::Uncond, SP.mask);
        assert_eq!(row.masked, vec![true, true, false, true]);
    }

    #[test]
    fn gumbel_matches_reference_formula() {
        // u = 0.5: -ln(-ln(0.5)) = -ln(0.693147) = 0.366513
        assert!((gumbel(0.5) - 0.366513).abs() < 1e-5);
        // u = 0: -ln(-ln(1e-8) + 1e-8) = -ln(18.420681) = -2.913474
        assert!((gumbel(0.0) + 2.913474).abs() < 1e-5);
    }
}
