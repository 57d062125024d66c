//! Continuous batching with KV caches ([`StepBatch`], what `dlm serve` runs) on the tiny
//! random LLaDA and XLM-R checkpoints: rows with different caches (`none`, `prefix`,
//! `dual`, `refresh:R`), strategies and seeds join a batch at different steps, so that one
//! step holds rows at different blocks and cache states; each row ends exactly as
//! `denoise` of its canvas alone with the same configuration (the same canvas after every
//! step, the same number of steps), and the batch reports the bytes its rows' caches hold.
//! The model runs on the device `DLM_TEST_DEVICE` names (default cpu).

use dlm_diffusion::{
    Cache, Canvas, Decoding, Denoised, Parallel, Remasking, SamplerConfig, Schedule, SpecialIds, StepBatch, Strategy, TopK,
    Update, denoise,
};
use dlm_models::{Backbone, LoadOptions, MaskedLm};
use std::path::PathBuf;

const XLMR: SpecialIds = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 89 };
const LLADA: SpecialIds = SpecialIds { bos: 0, eos: 1, pad: 1, mask: 126 };

fn load(name: &str) -> Backbone {
    let device = dlm_models::device_from_env("DLM_TEST_DEVICE").unwrap();
    let opts = LoadOptions { device, ..LoadOptions::default() };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dlm-models/tests/fixtures").join(name);
    Backbone::load(&dir, &opts).unwrap()
}

fn llada(block: usize, steps: usize) -> (usize, Strategy) {
    (steps, Strategy::LowConfidence { block_length: Some(block), remasking: Remasking::LowConfidence })
}

fn fast(threshold: f64, block: usize) -> (usize, Strategy) {
    (1, Strategy::ConfidenceThreshold { rule: Parallel::Threshold(threshold), block_length: Some(block) })
}

/// Runs `rows` (canvas, configuration, the `step()` call before which it joins) through
/// one batch; checks each against `denoise` alone, and the batch's cache bytes against
/// what its rows' caches take.
fn check(name: &str, model: &Backbone, sp: SpecialIds, rows: &[(Canvas, SamplerConfig, usize)]) {
    let alone: Vec<Denoised> =
        rows.iter().map(|(c, cfg, _)| denoise(model, std::slice::from_ref(c), cfg, sp).unwrap().remove(0)).collect();
    let mut batch = StepBatch::new(model, sp).unwrap();
    let mut ids = Vec::new();
    let mut done: Vec<Option<Denoised>> = vec![None; rows.len()];
    let mut peak = 0;
    for call in 0.. {
        for (c, cfg, at) in rows {
            if *at == call {
                ids.push(batch.add(c, cfg.clone()).unwrap());
            }
        }
        if batch.is_empty() && ids.len() == rows.len() {
            break;
        }
        let report = batch.step().unwrap();
        for (id, d) in report.finished {
            done[ids.iter().position(|&x| x == id).unwrap()] = Some(d);
        }
        // Each live cached row holds at most what `cache_bytes_for` budgets for it.
        let live: Vec<usize> = (0..ids.len()).filter(|&i| done[i].is_none()).collect();
        let bound: usize = live.iter().map(|&i| batch.cache_bytes_for(&rows[i].0, &rows[i].1).unwrap()).sum();
        assert!(batch.cache_bytes() <= bound, "{name}: {} bytes cached, {bound} budgeted", batch.cache_bytes());
        peak = peak.max(batch.cache_bytes());
    }
    assert!(peak > 0, "{name}: no row held a cache");
    assert_eq!(batch.cache_bytes(), 0, "{name}: the caches outlived their rows");
    for (i, (d, a)) in done.into_iter().zip(&alone).enumerate() {
        let d = d.unwrap_or_else(|| panic!("{name}: row {i} never finished"));
        let what = format!("{name} row {i} ({:?}, cache {})", rows[i].1.strategy, rows[i].1.cache);
        assert_eq!((&d.ids, d.steps), (&a.ids, a.steps), "{what}");
        assert_eq!(d.trajectory, a.trajectory, "{what}");
    }
}

fn cfg((steps, strategy): (usize, Strategy), cache: Cache, seed: u64, decoding: Decoding) -> SamplerConfig {
    SamplerConfig { steps, strategy, cache, seed, decoding, record_trajectory: true, ..SamplerConfig::default() }
}

#[test]
fn llada_rows_at_different_blocks_and_caches() {
    let model = load("llada-tiny");
    let canvas = |p: &[u32], l| Canvas::for_model(&model, p, l, LLADA).unwrap();
    let (a, b, c) = (canvas(&[37, 50, 110, 89, 59, 11], 16), canvas(&[20, 21, 22], 12), canvas(&[5, 6], 8));
    let sample = Decoding::Sample { temperature: 0.8 };
    let rows = vec![
        (a.clone(), cfg(llada(8, 16), Cache::Dual, 0, Decoding::Argmax), 0),
        (b.clone(), cfg(llada(4, 12), Cache::Prefix, 0, Decoding::Argmax), 0),
        (a.clone(), cfg(llada(8, 16), Cache::None, 0, Decoding::Argmax), 1),
        (c.clone(), cfg(fast(0.9, 4), Cache::Dual, 0, Decoding::Argmax), 3),
        (b.clone(), cfg(fast(0.5, 4), Cache::Prefix, 2, sample), 5),
        (a.clone(), cfg(llada(8, 16), Cache::Refresh(3), 0, Decoding::Argmax), 6),
        (c.clone(), cfg(llada(4, 8), Cache::Dual, 4, sample), 9),
        (b, cfg(llada(6, 12), Cache::Refresh(2), 1, sample), 9),
    ];
    check("llada-tiny", &model, LLADA, &rows);
}

#[test]
fn xlmr_rows_with_refreshed_caches_beside_uncached_ones() {
    let model = load("tiny-xlmr");
    let canvas = |p: &[u32], l| Canvas::for_model(&model, p, l, XLMR).unwrap();
    let (a, b) = (canvas(&[0, 10, 11, 12, 13, 14, 15], 12), canvas(&[0, 40, 41], 10));
    let reparam = |topk| (10, Strategy::Reparam { update: Update::Uncond, schedule: Schedule::Cosine, topk });
    let rows = vec![
        (a.clone(), cfg(reparam(TopK::Deterministic), Cache::Refresh(3), 0, Decoding::Argmax), 0),
        (b.clone(), cfg(reparam(TopK::Deterministic), Cache::None, 0, Decoding::Argmax), 0),
        (b.clone(), cfg(reparam(TopK::Stochastic { scale: 1.0 }), Cache::Refresh(2), 3, Decoding::Argmax), 2),
        (a.clone(), cfg((10, Strategy::Cmlm), Cache::Refresh(4), 1, Decoding::Sample { temperature: 0.7 }), 4),
        (b, cfg(llada(5, 10), Cache::Dual, 0, Decoding::Argmax), 4),
        (a, cfg(llada(6, 12), Cache::Refresh(2), 0, Decoding::Argmax), 7),
    ];
    check("tiny-xlmr", &model, XLMR, &rows);
}

#[test]
fn a_cached_row_is_refused_where_the_cache_does_not_apply() {
    let model = load("llada-tiny");
    let mut batch = StepBatch::new(&model, LLADA).unwrap();
    let c = Canvas::for_model(&model, &[5, 6], 8, LLADA).unwrap();
    let reparam = SamplerConfig { cache: Cache::Dual, ..SamplerConfig::default() };
    let e = batch.add(&c, reparam).unwrap_err().to_string();
    assert!(e.contains("llada and fast-dllm"), "{e}");
    assert!(batch.is_empty());
    // What a cached row may take: every layer's keys and values at every position.
    let dual = cfg(llada(4, 8), Cache::Dual, 0, Decoding::Argmax);
    let bytes = batch.cache_bytes_for(&c, &dual).unwrap();
    assert_eq!(bytes, model.kv_cache_bytes(c.ids().len()).unwrap());
    assert!(bytes > 0);
    assert_eq!(batch.cache_bytes_for(&c, &SamplerConfig { cache: Cache::None, ..dual.clone() }).unwrap(), 0);
    assert_eq!(batch.cache_bytes_for(&c, &SamplerConfig { cache: Cache::Refresh(1), ..dual }).unwrap(), 0);
}
