//! Loop-level tests: invariants as properties over random canvases and predictions, the
//! batched model path against rows run alone, early stopping and bad requests.

use super::predict::{Draws, Prediction, Predictor};
use super::*;
use super::Strategy;
use crate::schedule::Schedule;
use crate::testing::ToyLm;
use proptest::prelude::{Just, ProptestConfig, any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest};
use proptest::strategy::Strategy as _;
use rand::seq::SliceRandom;

const SP: SpecialIds = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 3 };

/// Random tokens and pairwise-distinct scores (a shuffled ladder `-(rank+1)/10`) for every
/// requested position, so that rankings never tie.
struct DistinctScores {
    rng: ChaCha8Rng,
}

impl Predictor for DistinctScores {
    fn predict(&mut self, rows: &[&[u32]], positions: &[Vec<usize>], _draws: &mut dyn Draws) -> Result<Vec<Vec<Prediction>>> {
        assert_eq!(rows.len(), positions.len());
        Ok(positions
            .iter()
            .map(|ps| {
                let mut ranks: Vec<usize> = (0..ps.len()).collect();
                ranks.shuffle(&mut self.rng);
                ranks
                    .into_iter()
                    .map(|r| Prediction::new(self.rng.random_range(4..50), -(r as f32 + 1.0) / 10.0))
                    .collect()
            })
            .collect())
    }
}

fn strategies() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop_oneof![
        (any::<bool>(), any::<bool>(), 0.0..2.0f64).prop_map(|(cond, cos, scale)| Strategy::Reparam {
            update: if cond { Update::Cond } else { Update::Uncond },
            schedule: if cos { Schedule::Cosine } else { Schedule::Linear },
            topk: if scale < 1.0 { TopK::Deterministic } else { TopK::Stochastic { scale } },
        }),
        Just(Strategy::Cmlm),
        Just(Strategy::Ar),
        any::<bool>().prop_map(|random| Strategy::LowConfidence {
            block_length: None,
            remasking: if random { Remasking::Random } else { Remasking::LowConfidence },
        }),
        (1usize..6, 0.0..1.0f64)
            .prop_map(|(b, threshold)| Strategy::ConfidenceThreshold { rule: Parallel::Threshold(threshold), block_length: Some(b) }),
        (1usize..6, 0.1..3.0f64)
            .prop_map(|(b, factor)| Strategy::ConfidenceThreshold { rule: Parallel::Factor(factor), block_length: Some(b) }),
        (0usize..4, any::<bool>()).prop_map(|(a, temp)| Strategy::Dream {
            alg: DreamAlg::ALL[a],
            alg_temp: temp.then_some(0.5),
            top_p: None,
            top_k: None,
        }),
    ]
}

fn canvases(prompts: &[(usize, usize)]) -> Vec<Canvas> {
    prompts
        .iter()
        .map(|&(p, l)| {
            let prefix: Vec<u32> = std::iter::once(SP.bos).chain((0..p as u32).map(|i| 10 + i)).collect();
            Canvas::new(&prefix, l, SP).unwrap()
        })
        .collect()
}

fn run_distinct(cs: &[Canvas], cfg: &SamplerConfig, seed: u64) -> Vec<Denoised> {
    let mut predictor = DistinctScores { rng: ChaCha8Rng::seed_from_u64(seed) };
    run(&mut predictor, cs, cfg, SP, &mut |_| {}).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn fills_everything_and_never_touches_fixed_positions(
        prompts in prop::collection::vec((0usize..5, 1usize..12), 1..4),
        strategy in strategies(),
        steps in 1usize..14,
        seed in any::<u64>(),
    ) {
        // LLaDA needs steps to be a multiple of the number of blocks (one block here);
        // AR fills one position per step, so give it at least L steps.
        let longest = prompts.iter().map(|p| p.1).max().unwrap_or(1);
        let steps = if strategy == Strategy::Ar { steps.max(longest) } else { steps };
        let cfg = SamplerConfig { steps, strategy, seed, record_trajectory: true, ..SamplerConfig::default() };
        let cs = canvases(&prompts);
        let out = run_distinct(&cs, &cfg, seed);
        for (c, d) in cs.iter().zip(&out) {
            prop_assert!(!d.ids.contains(&SP.mask), "{strategy:?}: masks left in {:?}", d.ids);
            let traj = d.trajectory.as_ref().unwrap();
            prop_assert_eq!(traj.canvases.len(), d.steps);
            for canvas in traj.canvases.iter().chain(std::iter::once(&d.ids)) {
                for (i, (&id, &g)) in c.ids().iter().zip(c.generate()).enumerate() {
                    if !g {
                        prop_assert_eq!(canvas[i], id, "fixed position {} changed", i);
                    }
                }
            }
        }
    }

    #[test]
    fn uncond_leaves_exactly_k_masks_after_each_step(
        prompts in prop::collection::vec((0usize..5, 1usize..20), 1..4),
        cosine in any::<bool>(),
        steps in 1usize..16,
        seed in any::<u64>(),
    ) {
        // Scores never tie, so after step s exactly k(s) = floor(N·rate(s)) slots are masked.
        let schedule = if cosine { Schedule::Cosine } else { Schedule::Linear };
        let strategy = Strategy::Reparam { update: Update::Uncond, schedule, topk: TopK::Deterministic };
        let cfg = SamplerConfig { steps, strategy, seed, record_trajectory: true, ..SamplerConfig::default() };
        let cs = canvases(&prompts);
        let out = run_distinct(&cs, &cfg, seed);
        for (c, d) in cs.iter().zip(&out) {
            let n = c.generation_len();
            for (s, canvas) in d.trajectory.as_ref().unwrap().canvases.iter().enumerate() {
                let masks = canvas.iter().filter(|&&t| t == SP.mask).count();
                prop_assert_eq!(masks, schedule.masked_after(n, s + 1, steps), "step {}", s + 1);
            }
        }
    }
}

#[test]
fn batched_rows_match_rows_run_alone() {
    // Padding and batching must not change any row: denoise three prompts of different
    // lengths together and one by one with the toy model (argmax, every strategy).
    let lm = ToyLm::new(40, 16, 32, 11);
    let cs = canvases(&[(3, 5), (0, 9), (6, 2)]);
    for strategy in [
        Strategy::Reparam { update: Update::Uncond, schedule: Schedule::Cosine, topk: TopK::Deterministic },
        Strategy::Reparam { update: Update::Cond, schedule: Schedule::Linear, topk: TopK::Deterministic },
        Strategy::Ar,
        Strategy::ConfidenceThreshold { rule: Parallel::Threshold(0.5), block_length: Some(3) },
    ] {
        let cfg = SamplerConfig { steps: 10, strategy, ..SamplerConfig::default() };
        let together = denoise(&lm, &cs, &cfg, SP).unwrap();
        for (c, t) in cs.iter().zip(&together) {
            let alone = denoise(&lm, std::slice::from_ref(c), &cfg, SP).unwrap();
            assert_eq!(alone[0].ids, t.ids, "{strategy:?}");
            for (a, b) in alone[0].scores.iter().zip(&t.scores) {
                assert!((a - b).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn same_seed_same_samples() {
    let lm = ToyLm::new(40, 16, 32, 11);
    let cs = canvases(&[(3, 8)]);
    let cfg = |seed| SamplerConfig { steps: 5, decoding: Decoding::Sample { temperature: 1.0 }, seed, ..SamplerConfig::default() };
    let a = denoise(&lm, &cs, &cfg(7), SP).unwrap();
    let b = denoise(&lm, &cs, &cfg(7), SP).unwrap();
    assert_eq!(a, b);
}

#[test]
fn stops_early_when_nothing_can_change() {
    // N = 3, K = 10, cosine: k(s) = floor(3·cos(πs/20)) = 2,2,2,2,2,1,1,0,0,0 → after
    // step 8 nothing is masked and k stays 0, so steps 9 and 10 are skipped.
    let cfg = SamplerConfig { steps: 10, record_trajectory: true, ..SamplerConfig::default() };
    let out = run_distinct(&canvases(&[(2, 3)]), &cfg, 1);
    assert_eq!(out[0].steps, 8);
    assert_eq!(out[0].trajectory.as_ref().unwrap().canvases.len(), 8);
    // CMLM re-scores every step and runs all K.
    let cfg = SamplerConfig { strategy: Strategy::Cmlm, ..cfg };
    assert_eq!(run_distinct(&canvases(&[(2, 3)]), &cfg, 1)[0].steps, 10);
}

#[test]
fn mean_logprob_skips_special_tokens() {
    // Stored scores [-1, -2, -4] with the middle token decoded as </s>: mean of -1 and -4.
    let mut row = Row::new(&canvases(&[(1, 3)])[0]);
    row.decode(0, 20, -1.0);
    row.decode(1, SP.eos, -2.0);
    row.decode(2, 21, -4.0);
    let d = finish(row, vec![], 1, false, SP);
    assert_eq!(d.mean_logprob, -2.5);
    assert_eq!(d.generated, vec![20, SP.eos, 21]);
}

#[test]
fn bad_requests_are_errors() {
    let lm = ToyLm::new(40, 16, 32, 11);
    let ok = canvases(&[(3, 5)]);
    let zero = SamplerConfig { steps: 0, ..SamplerConfig::default() };
    assert!(matches!(denoise(&lm, &ok, &zero, SP), Err(DiffusionError::ZeroSteps)));
    let long = canvases(&[(20, 20)]);
    assert!(matches!(denoise(&lm, &long, &SamplerConfig::default(), SP), Err(DiffusionError::TooLong { max: 32, .. })));
    // 5 generated tokens in blocks of 2 → 3 blocks; 10 steps is not a multiple of 3.
    let llada = SamplerConfig { strategy: Strategy::LowConfidence { block_length: Some(2), remasking: Remasking::LowConfidence }, ..SamplerConfig::default() };
    assert!(matches!(denoise(&lm, &ok, &llada, SP), Err(DiffusionError::InvalidConfig(_))));
    let cold = SamplerConfig { decoding: Decoding::Sample { temperature: 0.0 }, ..SamplerConfig::default() };
    assert!(matches!(denoise(&lm, &ok, &cold, SP), Err(DiffusionError::InvalidConfig(_))));
    let bad_mask = SpecialIds { mask: 400, ..SP };
    assert!(matches!(denoise(&lm, &ok, &SamplerConfig::default(), bad_mask), Err(DiffusionError::InvalidConfig(_))));
}

#[test]
fn llada_blocks_fill_left_to_right() {
    // 6 tokens in blocks of 3 with 4 steps: 2 steps per block, transfer counts [2, 1] per
    // block. After step 2 the first block is complete and the second untouched.
    let cfg = SamplerConfig {
        steps: 4,
        strategy: Strategy::LowConfidence { block_length: Some(3), remasking: Remasking::LowConfidence },
        record_trajectory: true,
        ..SamplerConfig::default()
    };
    let out = run_distinct(&canvases(&[(1, 6)]), &cfg, 3);
    let traj = &out[0].trajectory.as_ref().unwrap().canvases;
    let masks = |c: &Vec<u32>, r: std::ops::Range<usize>| c[r].iter().filter(|&&t| t == SP.mask).count();
    // canvas: <s> p | g0 g1 g2 | g3 g4 g5 | </s>  → slots at 2..5 and 5..8
    assert_eq!((masks(&traj[0], 2..5), masks(&traj[0], 5..8)), (1, 3));
    assert_eq!((masks(&traj[1], 2..5), masks(&traj[1], 5..8)), (0, 3));
    assert_eq!((masks(&traj[2], 2..5), masks(&traj[2], 5..8)), (0, 1));
    assert_eq!(masks(&traj[3], 0..9), 0);
}

/// Replays the reference's recorded per-step predictions (one row at a time, a
/// prediction for every slot per step), so the update logic is checked exactly,
/// independent of model numerics. Answers only the positions asked for; counts the steps
/// that asked for fewer than every slot.
struct Replay {
    steps: Vec<Vec<Prediction>>,
    calls: usize,
    /// The generation positions (the first call asks for all of them: all are masked).
    slots: Vec<usize>,
    mask: u32,
    partial: usize,
}

impl Predictor for Replay {
    fn predict(&mut self, rows: &[&[u32]], positions: &[Vec<usize>], _draws: &mut dyn Draws) -> Result<Vec<Vec<Prediction>>> {
        let preds = &self.steps[self.calls];
        if self.calls == 0 {
            self.slots = positions[0].clone();
        }
        assert_eq!(self.slots.len(), preds.len());
        if positions[0].len() < self.slots.len() {
            // Only k = 0 steps leave slots out, and then exactly the decoded ones.
            let masked: Vec<usize> = self.slots.iter().copied().filter(|&p| rows[0][p] == self.mask).collect();
            assert_eq!(positions[0], masked);
            self.partial += 1;
        }
        self.calls += 1;
        Ok(vec![positions[0].iter().map(|p| preds[self.slots.iter().position(|s| s == p).unwrap()]).collect()])
    }
}

#[test]
fn replayed_reference_predictions_give_reference_trajectories() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden.json");
    let g: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let sp: SpecialIds = serde_json::from_value(g["special"].clone()).unwrap();
    let s = &g["sampler"];
    let prefixes: Vec<Vec<u32>> = serde_json::from_value(s["prefixes"].clone()).unwrap();
    let lengths: Vec<usize> = serde_json::from_value(s["lengths"].clone()).unwrap();
    let steps = s["steps"].as_u64().unwrap() as usize;
    let mut partial = 0;
    for run_fx in s["runs"].as_array().unwrap() {
        let schedule = if run_fx["schedule"] == "cosine" { Schedule::Cosine } else { Schedule::Linear };
        let update = if run_fx["update"] == "cond" { Update::Cond } else { Update::Uncond };
        let cfg = SamplerConfig {
            steps,
            strategy: Strategy::Reparam { update, schedule, topk: TopK::Deterministic },
            record_trajectory: true,
            ..SamplerConfig::default()
        };
        for (i, (p, &l)) in prefixes.iter().zip(&lengths).enumerate() {
            let recorded: Vec<Vec<(u32, f32)>> = serde_json::from_value(run_fx["predictions"][i].clone()).unwrap();
            let steps_preds =
                recorded.into_iter().map(|s| s.into_iter().map(|(token, logp)| Prediction::new(token, logp)).collect()).collect();
            let mut replay = Replay { steps: steps_preds, calls: 0, slots: Vec::new(), mask: sp.mask, partial: 0 };
            let out = run(&mut replay, &[Canvas::new(p, l, sp).unwrap()], &cfg, sp, &mut |_| {}).unwrap();
            partial += replay.partial;
            let expected: Vec<Vec<u32>> = serde_json::from_value(run_fx["trajectory"][i].clone()).unwrap();
            let ours = &out[0].trajectory.as_ref().unwrap().canvases;
            for (s, e) in expected.iter().enumerate() {
                assert_eq!(ours.get(s).unwrap_or(&out[0].ids), e, "{update:?} {schedule:?} row {i} step {}", s + 1);
            }
            let scores: Vec<f32> = serde_json::from_value::<Vec<f64>>(run_fx["scores"][i].clone())
                .unwrap()
                .into_iter()
                .map(|x| x as f32)
                .collect();
            assert_eq!(out[0].scores, scores);
        }
    }
    assert!(partial > 0, "no step predicted only its masked slots");
}

#[test]
fn step_events_are_exactly_the_trajectory() {
    // Two rows of different lengths: the events, step by step and row by row, are the
    // recorded trajectory, and their mask counts are the masks left in each canvas.
    let lm = ToyLm::new(40, 16, 32, 11);
    let cs = canvases(&[(3, 6), (1, 4)]);
    for strategy in [
        Strategy::Reparam { update: Update::Uncond, schedule: Schedule::Cosine, topk: TopK::Deterministic },
        Strategy::Cmlm,
        Strategy::ConfidenceThreshold { rule: Parallel::Threshold(0.5), block_length: Some(2) },
    ] {
        let cfg = SamplerConfig { steps: 6, strategy, record_trajectory: true, ..SamplerConfig::default() };
        let mut seen: Vec<Vec<Vec<u32>>> = vec![Vec::new(); cs.len()];
        let mut steps = Vec::new();
        let out = denoise_with(&lm, &cs, &cfg, SP, &mut |e| {
            steps.push(e.step);
            assert_eq!(e.len(), 2);
            for (i, canvas) in e.canvases().enumerate() {
                assert_eq!(e.masked(i), canvas.iter().filter(|&&t| t == SP.mask).count());
                seen[i].push(canvas.to_vec());
            }
        })
        .unwrap();
        assert_eq!(steps, (1..=out[0].steps).collect::<Vec<_>>(), "{strategy:?}");
        for (d, s) in out.iter().zip(&seen) {
            assert_eq!(&d.trajectory.as_ref().unwrap().canvases, s, "{strategy:?}");
        }
        // Without a recorded trajectory the events still come, and the result is the same.
        let mut count = 0;
        let quiet = SamplerConfig { record_trajectory: false, ..cfg };
        let plain = denoise_with(&lm, &cs, &quiet, SP, &mut |_| count += 1).unwrap();
        assert_eq!(count, out[0].steps);
        assert_eq!(plain[0].ids, out[0].ids);
    }
}

#[test]
fn step_batch_rows_equal_their_runs_alone() {
    // Rows of different prompts, lengths, strategies, decodings and seeds, joining the batch
    // at different steps: each row's result is `denoise` of its canvas alone (ToyLm's hidden
    // states for a row do not depend on padding), and each step reports the row's own step
    // number and mask count.
    let lm = ToyLm::new(40, 16, 32, 11);
    let cs = canvases(&[(3, 6), (1, 4), (5, 9), (2, 7), (4, 5), (2, 8), (3, 7), (1, 9), (2, 6), (4, 8)]);
    let reparam = Strategy::Reparam { update: Update::Uncond, schedule: Schedule::Cosine, topk: TopK::Deterministic };
    let cfgs = [
        SamplerConfig { steps: 6, strategy: reparam, ..SamplerConfig::default() },
        SamplerConfig { steps: 4, strategy: Strategy::Cmlm, seed: 3, decoding: Decoding::Sample { temperature: 0.7 }, ..SamplerConfig::default() },
        SamplerConfig {
            steps: 9,
            strategy: Strategy::Reparam { update: Update::Cond, schedule: Schedule::Linear, topk: TopK::Stochastic { scale: 1.0 } },
            seed: 5,
            record_trajectory: true,
            ..SamplerConfig::default()
        },
        SamplerConfig { steps: 3, strategy: Strategy::ConfidenceThreshold { rule: Parallel::Threshold(0.5), block_length: Some(2) }, ..SamplerConfig::default() },
        SamplerConfig { steps: 5, strategy: Strategy::LowConfidence { block_length: None, remasking: Remasking::LowConfidence }, seed: 9, decoding: Decoding::Sample { temperature: 1.3 }, ..SamplerConfig::default() },
        SamplerConfig { steps: 4, strategy: Strategy::LowConfidence { block_length: Some(2), remasking: Remasking::Random }, seed: 2, ..SamplerConfig::default() },
        SamplerConfig { steps: 3, strategy: Strategy::ConfidenceThreshold { rule: Parallel::Factor(1.0), block_length: Some(3) }, ..SamplerConfig::default() },
        SamplerConfig {
            steps: 4,
            strategy: Strategy::Dream { alg: DreamAlg::Entropy, alg_temp: Some(0.3), top_p: Some(0.9), top_k: None },
            seed: 4,
            decoding: Decoding::Sample { temperature: 0.5 },
            record_trajectory: true,
            ..SamplerConfig::default()
        },
        SamplerConfig { steps: 6, strategy: Strategy::Dream { alg: DreamAlg::Origin, alg_temp: None, top_p: None, top_k: None }, seed: 6, ..SamplerConfig::default() },
        SamplerConfig { steps: 3, strategy: Strategy::Dream { alg: DreamAlg::TopkMargin, alg_temp: None, top_p: None, top_k: Some(5) }, ..SamplerConfig::default() },
    ];
    let alone: Vec<Denoised> = cs.iter().zip(&cfgs).map(|(c, cfg)| denoise(&lm, std::slice::from_ref(c), cfg, SP).unwrap().remove(0)).collect();
    let mut batch = StepBatch::new(&lm, SP).unwrap();
    let mut ids = Vec::new();
    let mut done: Vec<Option<Denoised>> = vec![None; cs.len()];
    let mut last_step = vec![0; cs.len()];
    let join_at = [0, 0, 1, 2, 4, 4, 5, 5, 6, 7];
    for call in 0.. {
        for (i, &at) in join_at.iter().enumerate() {
            if at == call {
                ids.push(batch.add(&cs[i], cfgs[i].clone()).unwrap());
            }
        }
        if batch.is_empty() && ids.len() == cs.len() {
            break;
        }
        let report = batch.step().unwrap();
        for a in &report.advanced {
            let i = ids.iter().position(|&id| id == a.id).unwrap();
            assert_eq!(a.step, last_step[i] + 1);
            last_step[i] = a.step;
            assert_eq!(a.masked, a.generated.iter().filter(|&&t| t == SP.mask).count());
        }
        for (id, d) in report.finished {
            done[ids.iter().position(|&x| x == id).unwrap()] = Some(d);
        }
    }
    for (i, (d, a)) in done.into_iter().zip(&alone).enumerate() {
        let d = d.unwrap_or_else(|| panic!("row {i} never finished"));
        // The same tokens and steps; scores equal up to the rounding of a projection over
        // more rows.
        assert_eq!((&d.ids, &d.generated, d.steps), (&a.ids, &a.generated, a.steps), "row {i}");
        assert_eq!(d.trajectory, a.trajectory, "row {i}");
        for (x, y) in d.scores.iter().zip(&a.scores) {
            assert!((x - y).abs() < 1e-5 || x == y, "row {i}: {:?} vs {:?}", d.scores, a.scores);
        }
        assert_eq!(last_step[i], a.steps, "row {i}");
    }
}

#[test]
fn step_batch_checks_rows_and_forgets_removed_ones() {
    let lm = ToyLm::new(40, 16, 32, 11);
    let mut batch = StepBatch::new(&lm, SP).unwrap();
    let c = &canvases(&[(2, 4)])[0];
    // LLaDA with 3 steps for one block is fine; 3 steps for 2 blocks of 2 is refused at add.
    let llada = |block_length| SamplerConfig { steps: 3, strategy: Strategy::LowConfidence { block_length, remasking: Remasking::LowConfidence }, ..SamplerConfig::default() };
    assert!(batch.add(c, llada(None)).is_ok());
    assert!(matches!(batch.add(c, llada(Some(2))), Err(DiffusionError::InvalidConfig(_))));
    assert!(matches!(batch.add(c, SamplerConfig { steps: 0, ..SamplerConfig::default() }), Err(DiffusionError::ZeroSteps)));
    let long = &canvases(&[(20, 20)])[0];
    assert!(matches!(batch.add(long, SamplerConfig::default()), Err(DiffusionError::TooLong { .. })));
    let b = batch.add(c, SamplerConfig::default()).unwrap();
    assert_eq!(batch.len(), 2);
    batch.step().unwrap();
    assert!(batch.remove(b));
    assert!(!batch.remove(b));
    let report = batch.step().unwrap();
    assert!(report.advanced.iter().all(|a| a.id != b));
}

#[test]
fn llada_steps_that_transfer_nothing_do_not_end_the_run() {
    // 4 tokens in blocks of 2 with 8 steps: 4 steps per block, transfer counts [1, 1, 0, 0]
    // per block. Steps 3 and 4 transfer nothing, yet block 2 still runs (steps 5 and 6);
    // after step 6 nothing is masked and the run stops.
    let cfg = SamplerConfig {
        steps: 8,
        strategy: Strategy::LowConfidence { block_length: Some(2), remasking: Remasking::LowConfidence },
        record_trajectory: true,
        ..SamplerConfig::default()
    };
    let out = run_distinct(&canvases(&[(1, 4)]), &cfg, 2);
    assert!(!out[0].ids.contains(&SP.mask), "{:?}", out[0].ids);
    assert_eq!(out[0].steps, 6);
    let traj = &out[0].trajectory.as_ref().unwrap().canvases;
    assert_eq!(traj[1], traj[2]);
    assert_eq!(traj[2], traj[3]);
}

/// Fixed logits for `<s> p | g0 g1 g2 | </s>` (vocabulary 8, `<mask>` = 3): g0 prefers
/// `<mask>` (logit 2, the rest 0: p = e²/(e² + 7) = 0.5135), g1 prefers 5 (logit 4:
/// p = e⁴/(e⁴ + 7) = 0.8864), g2 prefers 6 (logit 1: p = e/(e + 7) = 0.2797).
fn mask_loving_model() -> (crate::testing::FixedLm, Canvas) {
    let mut table = vec![0f32; 6 * 8];
    table[2 * 8 + SP.mask as usize] = 2.0;
    table[3 * 8 + 5] = 4.0;
    table[4 * 8 + 6] = 1.0;
    (crate::testing::FixedLm::new(table, 1, 6, 8), canvases(&[(1, 3)]).remove(0))
}

#[test]
fn llada_and_fast_dllm_do_not_forbid_the_mask() {
    let (lm, canvas) = mask_loving_model();
    let cs = std::slice::from_ref(&canvas);
    // LLaDA, one block, 3 steps, counts [1, 1, 1]: step 1 transfers g1 (0.886) → 5; steps
    // 2 and 3 transfer g0 (0.514 > 0.280), whose prediction is <mask>: it stays masked and
    // is the most confident candidate again, so g2 is never reached.
    let llada = SamplerConfig {
        steps: 3,
        strategy: Strategy::LowConfidence { block_length: None, remasking: Remasking::LowConfidence },
        record_trajectory: true,
        ..SamplerConfig::default()
    };
    let out = denoise(&lm, cs, &llada, SP).unwrap().remove(0);
    assert_eq!(out.ids, vec![0, 10, 3, 5, 3, 2]);
    assert_eq!(out.steps, 3);
    assert_eq!(out.trajectory.unwrap().canvases, vec![vec![0, 10, 3, 5, 3, 2]; 3]);
    // Fast-dLLM, threshold 0.9, one block: step 1 transfers the top-1 g1 (nothing else
    // reaches 0.9); step 2's top-1 is g0 → <mask>, nothing changes: the reference would
    // repeat this step forever; dlm moves past the block, which ends the run.
    let fast = SamplerConfig {
        strategy: Strategy::ConfidenceThreshold { rule: Parallel::Threshold(0.9), block_length: Some(3) },
        ..llada.clone()
    };
    let out = denoise(&lm, cs, &fast, SP).unwrap().remove(0);
    assert_eq!((out.ids.clone(), out.steps), (vec![0, 10, 3, 5, 3, 2], 2));
    // The strategies that forbid <mask> take g0's second best (id 0, the first of equal
    // logits) instead.
    let ar = SamplerConfig { steps: 3, strategy: Strategy::Ar, ..SamplerConfig::default() };
    assert_eq!(denoise(&lm, cs, &ar, SP).unwrap()[0].ids, vec![0, 10, 0, 5, 6, 2]);
    // Dream, maskgit_plus, 3 steps over 3 masks: counts 0 (3 · (1 − 0.667) = 0.999), 1
    // (3 · 0.4995 = 1.4985), then all that remain; g0's <mask> stays masked throughout.
    let dream = SamplerConfig {
        steps: 3,
        strategy: Strategy::Dream { alg: DreamAlg::MaskgitPlus, alg_temp: None, top_p: None, top_k: None },
        record_trajectory: true,
        ..SamplerConfig::default()
    };
    let out = denoise(&lm, cs, &dream, SP).unwrap().remove(0);
    let traj = out.trajectory.unwrap().canvases;
    assert_eq!(traj, vec![vec![0, 10, 3, 3, 3, 2], vec![0, 10, 3, 5, 3, 2], vec![0, 10, 3, 5, 6, 2]]);
}

#[test]
fn dream_filters_and_fast_paths_agree() {
    // maskgit_plus without filtering reads the fused argmax (confidence exp(log p)); with
    // top_k = V it takes the whole-distribution path, whose filtering keeps everything: the
    // same tokens at every step.
    let lm = ToyLm::new(40, 16, 32, 11);
    let cs = canvases(&[(3, 9), (1, 6)]);
    let dream = |top_k| SamplerConfig {
        steps: 5,
        strategy: Strategy::Dream { alg: DreamAlg::MaskgitPlus, alg_temp: None, top_p: None, top_k },
        record_trajectory: true,
        ..SamplerConfig::default()
    };
    let fast = denoise(&lm, &cs, &dream(None), SP).unwrap();
    let full = denoise(&lm, &cs, &dream(Some(40)), SP).unwrap();
    for (a, b) in fast.iter().zip(&full) {
        assert_eq!(a.trajectory, b.trajectory);
    }
}

#[test]
fn every_strategy_name_builds_a_strategy_of_that_name() {
    for name in StrategyName::ALL {
        let strategy = name.build(Schedule::Cosine, StrategyKnobs::default());
        assert_eq!(strategy.name(), name, "{}", name.as_str());
    }
}
