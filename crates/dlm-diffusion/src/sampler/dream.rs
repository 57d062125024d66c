//! Dream's `diffusion_generate` (Dream's `generation_utils.py` `_sample` and
//! `sample_tokens`, as vendored by NVlabs/Fast-dLLM at 24cc59e7 in
//! `dream/model/generation_utils.py`), one row at a time:
//!
//! * the schedule: `timesteps = torch.linspace(1, eps = 1e-3, steps + 1)` in f32, step i
//!   (0-based) going from `t = timesteps[i]` to `s = timesteps[i + 1]`;
//! * `origin`: every masked position is transferred with probability `1 − s/t` (1 at the
//!   last step);
//! * the other algorithms: `int(masked · (1 − s/t))` positions (all masked ones at the
//!   last step), the most confident (`alg_temp` none or 0) or drawn without replacement
//!   from `softmax(confidence / alg_temp)`;
//! * tokens and confidences from `sample_tokens`: logits / temperature (when > 0), top-p
//!   filtering, top-k filtering, softmax; the token is the argmax (temperature 0) or a draw;
//!   the confidence is its probability (`maskgit_plus`), top-1 − top-2 (`topk_margin`) or
//!   `Σ p log(p + 1e-10)` (`entropy`).
//!
//! Nothing is forbidden: a position whose transferred prediction is `<mask>` stays masked.
//! Draws come from the row's seeded ChaCha generator, so sampled runs cannot reproduce
//! torch's random streams; at temperature 0 without `alg_temp` (and not `origin`) nothing
//! is drawn and the steps are the reference's.

use super::config::DreamAlg;
use super::predict::Prediction;
use super::state::Row;
use super::unmask::ranked;
use rand::Rng;

/// Dream's `eps`, the last timestep.
const EPS: f32 = 1e-3;

/// `torch.linspace(1, 1e-3, points)[i]` in f32, as torch (2.x, CPU and CUDA) computes it:
/// `step = (end − start) / (points − 1)` in f32, then `start + step · i` for the first half
/// and `end − step · (points − 1 − i)` for the rest, each one fused multiply-add (one
/// rounding). Checked against torch 2.15's CPU kernel for every `points` up to 4100.
pub(crate) fn timestep(i: usize, points: usize) -> f32 {
    let (start, end) = (1.0f32, EPS);
    if points <= 1 {
        return start;
    }
    let step = (end - start) / (points - 1) as f32;
    if i < points / 2 { step.mul_add(i as f32, start) } else { (-step).mul_add((points - 1 - i) as f32, end) }
}

/// `1 − s/t` of step `step` (1-based) of `steps`, in f32 as the reference's 0-dim f32
/// tensors compute it.
fn one_minus_s_over_t(step: usize, steps: usize) -> f32 {
    let (t, s) = (timestep(step - 1, steps + 1), timestep(step, steps + 1));
    1.0 - s / t
}

/// The number of positions the non-`origin` algorithms transfer at step `step` (1-based)
/// of `steps` when `masked` positions are masked: `int(num_mask_token * (1 - s / t))`, the
/// product of two f32 values truncated, or all of them at the last step.
pub(crate) fn transfer_count(masked: usize, step: usize, steps: usize) -> usize {
    if step >= steps {
        return masked;
    }
    let product = masked as f32 * one_minus_s_over_t(step, steps);
    if product <= 0.0 { 0 } else { product as usize }
}

/// `origin`'s transfer probability at step `step` (1-based) of `steps`: `1 − s/t`, or 1 at
/// the last step.
pub(crate) fn transfer_probability(step: usize, steps: usize) -> f32 {
    if step >= steps { 1.0 } else { one_minus_s_over_t(step, steps) }
}

/// `sample_tokens` for one position, from the model's f32 log-probabilities (which differ
/// from the reference's logits by a constant, so every step below is the reference's on
/// values equal up to rounding): `(token, confidence)`. `temperature`: `None` for argmax.
pub(crate) fn sample_tokens(
    logp: &[f32],
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<usize>,
    alg: DreamAlg,
    rng: &mut impl Rng,
) -> (usize, f32) {
    let mut logits: Vec<f32> = match temperature {
        Some(t) => logp.iter().map(|&x| x / t as f32).collect(),
        None => logp.to_vec(),
    };
    if let Some(p) = top_p.filter(|&p| p < 1.0) {
        top_p_filter(&mut logits, p);
    }
    if let Some(k) = top_k {
        top_k_filter(&mut logits, k);
    }
    let probs = softmax(&logits);
    let (token, max_prob) = match temperature {
        Some(_) => {
            let t = draw(&probs, rng);
            (t, probs[t])
        }
        None => argmax(&probs),
    };
    let confidence = match alg {
        DreamAlg::Origin | DreamAlg::MaskgitPlus => max_prob,
        DreamAlg::TopkMargin => {
            let (first, second) = top_two(&probs);
            first - second
        }
        DreamAlg::Entropy => probs.iter().map(|&p| (p * (p + 1e-10).ln()) as f64).sum::<f64>() as f32,
    };
    (token, confidence)
}

/// `top_p_logits`: sort descending, cumulative softmax; the token at sorted index i ≥ 1 is
/// removed (its logit set to the f32 minimum) when the cumulative probability up to index
/// i − 1 exceeds `top_p` (`>`, in f32); the first is always kept. Ties in the sort go by
/// id (torch's sort is not stable; only ties at the cut can tell).
fn top_p_filter(logits: &mut [f32], top_p: f64) {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let sorted: Vec<f32> = order.iter().map(|&i| logits[i]).collect();
    let probs = softmax(&sorted);
    // torch's CPU cumsum accumulates a float tensor in double, rounding each output.
    let mut cumulative = 0f64;
    let mut keep = probs.len();
    for (i, &p) in probs.iter().enumerate() {
        cumulative += p as f64;
        if cumulative as f32 > top_p as f32 {
            keep = i + 1; // index i itself stays (the shift right); i + 1 on are removed
            break;
        }
    }
    for &i in &order[keep..] {
        logits[i] = f32::MIN;
    }
}

/// `top_k_logits`: logits below the k-th largest are set to the f32 minimum (ties with it
/// are kept).
fn top_k_filter(logits: &mut [f32], k: usize) {
    let k = k.min(logits.len());
    if k == 0 {
        return;
    }
    let mut values = logits.to_vec();
    let (_, kth, _) = values.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = *kth;
    for x in logits.iter_mut() {
        if *x < kth {
            *x = f32::MIN;
        }
    }
}

/// `softmax` in f32 (the sum accumulated in f64).
fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let exps: Vec<f32> = x.iter().map(|&v| (v - max).exp()).collect();
    let sum = exps.iter().map(|&e| e as f64).sum::<f64>() as f32;
    exps.into_iter().map(|e| e / sum).collect()
}

/// The first largest entry and its value.
fn argmax(p: &[f32]) -> (usize, f32) {
    p.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) })
}

/// The largest and second largest values (the second 0 for a single entry).
fn top_two(p: &[f32]) -> (f32, f32) {
    let (mut first, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in p {
        if v > first {
            second = first;
            first = v;
        } else if v > second {
            second = v;
        }
    }
    (first, if second.is_finite() { second } else { 0.0 })
}

/// An inverse-CDF draw from the weights (f64 accumulation); the last positive weight when
/// rounding leaves the target past the total.
fn draw(weights: &[f32], rng: &mut impl Rng) -> usize {
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    let target = rng.random::<f64>() * total;
    let mut acc = 0.0;
    let mut last_positive = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            acc += w as f64;
            last_positive = i;
            if acc > target {
                return i;
            }
        }
    }
    last_positive
}

/// One step of `_sample` for a row: `candidates` are its masked slots (all of them, in
/// order) and `preds` their predictions; `count` is [`transfer_count`] for this step.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dream_update(
    row: &mut Row,
    candidates: &[usize],
    preds: &[Prediction],
    alg: DreamAlg,
    alg_temp: Option<f64>,
    (step, steps, count): (usize, usize, usize),
    rng: &mut impl Rng,
    mask: u32,
) {
    if alg == DreamAlg::Origin {
        let p = transfer_probability(step, steps);
        for (&j, pred) in candidates.iter().zip(preds) {
            if rng.random::<f32>() < p {
                row.transfer(j, pred.token, pred.logp, mask);
            }
        }
        return;
    }
    if count == 0 {
        return;
    }
    let confidence: Vec<f64> = preds.iter().map(|p| p.confidence as f64).collect();
    let chosen = match alg_temp.filter(|&t| t != 0.0) {
        None => ranked(&confidence).into_iter().take(count).collect(),
        Some(t) => sample_without_replacement(&confidence, t, count, rng),
    };
    for i in chosen {
        row.transfer(candidates[i], preds[i].token, preds[i].logp, mask);
    }
}

/// `torch.multinomial(softmax(confidence / alg_temp), count)` (without replacement): one
/// draw at a time from the remaining weights. When the remaining weights underflow to 0
/// (torch refuses such a draw) the rest are taken by confidence.
fn sample_without_replacement(confidence: &[f64], alg_temp: f64, count: usize, rng: &mut impl Rng) -> Vec<usize> {
    let scaled: Vec<f64> = confidence.iter().map(|&c| c / alg_temp).collect();
    let max = scaled.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    let mut weights: Vec<f64> = scaled.iter().map(|&v| (v - max).exp()).collect();
    let mut chosen = Vec::with_capacity(count);
    while chosen.len() < count.min(confidence.len()) {
        let total: f64 = weights.iter().sum();
        if total.is_nan() || total <= 0.0 {
            let need = count.min(confidence.len()) - chosen.len();
            let rest: Vec<usize> = ranked(confidence).into_iter().filter(|i| !chosen.contains(i)).take(need).collect();
            chosen.extend(rest);
            break;
        }
        let target = rng.random::<f64>() * total;
        let mut acc = 0.0;
        let mut pick = None;
        for (i, &w) in weights.iter().enumerate() {
            if w > 0.0 {
                acc += w;
                pick = Some(i);
                if acc > target {
                    break;
                }
            }
        }
        let i = pick.expect("a positive weight");
        weights[i] = 0.0;
        chosen.push(i);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvas::{Canvas, SpecialIds};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SP: SpecialIds = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 99 };

    #[test]
    fn timesteps_are_torchs_linspace() {
        // torch.linspace(1, 1e-3, 9) (steps = 8): step = (0.001 − 1)/8 = −0.124875;
        // [1, 0.875125, 0.75025, 0.625375, 0.5005, 0.375625, 0.25075, 0.125875, 0.001].
        // Values printed by torch 2.15 (f32, bit for bit).
        let torch9 = [1.0f32, 0.875125, 0.75025, 0.625375, 0.5005, 0.375625, 0.25075, 0.125875, 0.001];
        assert_eq!((0..9).map(|i| timestep(i, 9)).collect::<Vec<_>>(), torch9);
        // torch.linspace(1, 1e-3, 8)[3] = 0.5718571 is start + step·3 rounded once (the
        // fused form); rounding step·3 first gives 0.57185715 instead.
        assert_eq!(timestep(3, 8), 0.5718571f32);
        assert_eq!(timestep(6, 8), 0.1437143f32);
        assert_eq!(timestep(4, 12), 0.6367273f32);
    }

    #[test]
    fn transfer_counts_follow_the_reference() {
        // 8 masks, 4 steps: timesteps 1, 0.75025, 0.5005, 0.25075, 0.001.
        // step 1: 1 − 0.75025/1 = 0.24975 → 8 · 0.24975 = 1.998 → 1; 7 left
        // step 2: 1 − 0.5005/0.75025 = 0.33289 → 7 · 0.33289 = 2.330 → 2; 5 left
        // step 3: 1 − 0.25075/0.5005 = 0.49900 → 5 · 0.49900 = 2.495 → 2; 3 left
        // step 4 (the last): all 3.
        let mut masked = 8;
        let mut counts = Vec::new();
        for step in 1..=4 {
            let k = transfer_count(masked, step, 4);
            counts.push(k);
            masked -= k;
        }
        assert_eq!(counts, vec![1, 2, 2, 3]);
        // As many steps as tokens: step 1 gives L · (1 − t₁) = L · 0.999/L = 0.999 → 0, then
        // one per step and two at the last. These schedules are torch 2.15's
        // (`int(n * (1 - s / t))` on the f32 linspace, every step transferring exactly its
        // count), for L tokens in K steps; the same comparison over every L, K < 70 and
        // 128…1024 (5329 schedules) agreed when this was written.
        for (l, k, expected) in [
            (16usize, 16usize, {
                let mut v = vec![0usize];
                v.extend(std::iter::repeat_n(1, 14));
                v.push(2);
                v
            }),
            (16, 5, vec![3, 3, 3, 3, 4]),
            (10, 3, vec![3, 3, 4]),
            (5, 1, vec![5]),
            (9, 6, vec![1, 1, 1, 1, 2, 3]),
            (5, 6, vec![0, 0, 1, 1, 1, 2]),
            (64, 32, {
                let mut v = vec![1usize];
                v.extend(std::iter::repeat_n(2, 30));
                v.push(3);
                v
            }),
        ] {
            let mut masked = l;
            let got: Vec<usize> = (1..=k)
                .map(|s| {
                    let c = transfer_count(masked, s, k);
                    masked -= c;
                    c
                })
                .collect();
            assert_eq!(got, expected, "L={l} K={k}");
        }
    }

    #[test]
    fn origin_probability_is_one_minus_s_over_t_then_one() {
        // 4 steps: 1 − 0.75025 = 0.24975 at step 1, 1 at step 4.
        assert!((transfer_probability(1, 4) - 0.24975).abs() < 1e-6);
        assert_eq!(transfer_probability(4, 4), 1.0);
    }

    fn lp(p: &[f32]) -> Vec<f32> {
        p.iter().map(|x| x.ln()).collect()
    }

    #[test]
    fn confidences_of_each_algorithm() {
        // p = [0.5, 0.3, 0.2]:
        //   maskgit_plus: 0.5 (token 0)
        //   topk_margin: 0.5 − 0.3 = 0.2
        //   entropy: 0.5 ln 0.5 + 0.3 ln 0.3 + 0.2 ln 0.2 = −0.34657 − 0.36119 − 0.32189
        //            = −1.02965
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let row = lp(&[0.5, 0.3, 0.2]);
        let (t, c) = sample_tokens(&row, None, None, None, DreamAlg::MaskgitPlus, &mut rng);
        assert_eq!(t, 0);
        assert!((c - 0.5).abs() < 1e-6);
        let (_, c) = sample_tokens(&row, None, None, None, DreamAlg::TopkMargin, &mut rng);
        assert!((c - 0.2).abs() < 1e-6);
        let (_, c) = sample_tokens(&row, None, None, None, DreamAlg::Entropy, &mut rng);
        assert!((c + 1.029653).abs() < 1e-5, "{c}");
    }

    #[test]
    fn filtering_renormalises_before_the_confidence() {
        // p = [0.5, 0.3, 0.15, 0.05].
        // top_p = 0.7: cumulative 0.5, 0.8, 0.95, 1.0; removed where the previous
        //   cumulative > 0.7 → ids 2 and 3; kept {0.5, 0.3} → renormalised 0.625, 0.375:
        //   maskgit_plus 0.625, margin 0.25.
        // top_k = 3: kept {0.5, 0.3, 0.15} → /0.95: 0.52632, 0.31579, 0.15789.
        // top_p = 0.5: cumulative 0.5 is not > 0.5, 0.8 is → ids 0, 1 kept (the first
        //   past the mass stays).
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let row = lp(&[0.5, 0.3, 0.15, 0.05]);
        let (t, c) = sample_tokens(&row, None, Some(0.7), None, DreamAlg::MaskgitPlus, &mut rng);
        assert_eq!(t, 0);
        assert!((c - 0.625).abs() < 1e-6, "{c}");
        let (_, c) = sample_tokens(&row, None, Some(0.7), None, DreamAlg::TopkMargin, &mut rng);
        assert!((c - 0.25).abs() < 1e-6, "{c}");
        let (_, c) = sample_tokens(&row, None, None, Some(3), DreamAlg::MaskgitPlus, &mut rng);
        assert!((c - 0.5 / 0.95).abs() < 1e-6, "{c}");
        let (_, c) = sample_tokens(&row, None, Some(0.5), None, DreamAlg::MaskgitPlus, &mut rng);
        assert!((c - 0.625).abs() < 1e-6, "{c}");
        // Sampling at a temperature only ever returns kept ids.
        for _ in 0..200 {
            let (t, _) = sample_tokens(&row, Some(1.0), Some(0.7), None, DreamAlg::MaskgitPlus, &mut rng);
            assert!(t < 2);
        }
    }

    fn row(n: usize) -> Row {
        Row::new(&Canvas::new(&[0], n, SP).unwrap())
    }

    #[test]
    fn topk_transfers_the_most_confident_and_mask_predictions_stay_masked() {
        // Confidences 0.2, 0.9, 0.5, 0.9 (slots 0..4), count 3 → slots 1, 3 (tie → position
        // order), then 2. Slot 3 predicted <mask>: it stays masked.
        let mut r = row(4);
        let preds: Vec<Prediction> = [(10, 0.2), (11, 0.9), (12, 0.5), (SP.mask, 0.9)]
            .iter()
            .map(|&(token, c)| Prediction { token, logp: -1.0, confidence: c })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        dream_update(&mut r, &[0, 1, 2, 3], &preds, DreamAlg::MaskgitPlus, None, (1, 4, 3), &mut rng, SP.mask);
        assert_eq!(r.masked, vec![true, false, false, true]);
        assert_eq!(r.tokens, vec![0, 99, 11, 12, 99, 2]);
    }

    #[test]
    fn alg_temp_draws_distinct_positions() {
        let conf = [0.1, 0.9, 0.5, 0.7];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for count in 0..=4 {
            let mut chosen = sample_without_replacement(&conf, 0.5, count, &mut rng);
            chosen.sort();
            chosen.dedup();
            assert_eq!(chosen.len(), count);
        }
        // A tiny temperature is the argmax order.
        assert_eq!(sample_without_replacement(&conf, 1e-4, 2, &mut rng), vec![1, 3]);
    }
}
