//! `cache refresh:R` (dKV-Cache-Decode with a refresh every R steps) and `reuse:R` on the
//! tiny random XLM-R, ModernBERT and LLaDA checkpoints: `refresh:1` and `reuse:1` are the
//! uncached run bit for bit; `refresh:R` and `reuse:R` with R > 1 run every strategy, return
//! valid canvases (the prompt kept, the canvas length kept, as many masks left as without
//! the cache) and compute fewer positions than the uncached run, counted at the model. The
//! model runs on the device `DLM_TEST_DEVICE` names (default cpu).

use candle_core::{DType, Device, Tensor};
use dlm_diffusion::{
    Cache, Canvas, Decoding, Denoised, DreamAlg, Parallel, Remasking, SamplerConfig, Schedule, SpecialIds, Strategy, TopK,
    Update, denoise,
};
use dlm_models::{Argmax, Backbone, CachedRow, KvCache, LoadOptions, MaskedLm};
use std::cell::Cell;
use std::ops::Range;
use std::path::PathBuf;

/// A backbone that counts the positions its forwards compute (uncached and cached).
struct Counting {
    model: Backbone,
    uncached: Cell<usize>,
    cached: Cell<usize>,
    cached_calls: Cell<usize>,
}

impl Counting {
    fn load(name: &str) -> Counting {
        let device = dlm_models::device_from_env("DLM_TEST_DEVICE").unwrap();
        let opts = LoadOptions { device, ..LoadOptions::default() };
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dlm-models/tests/fixtures").join(name);
        let model = Backbone::load(&dir, &opts).unwrap();
        Counting { model, uncached: Cell::new(0), cached: Cell::new(0), cached_calls: Cell::new(0) }
    }

    fn reset(&self) {
        self.uncached.set(0);
        self.cached.set(0);
        self.cached_calls.set(0);
    }
}

impl MaskedLm for Counting {
    fn encode(&self, ids: &Tensor, attention_mask: &Tensor) -> dlm_models::Result<Tensor> {
        self.uncached.set(self.uncached.get() + ids.elem_count());
        self.model.encode(ids, attention_mask)
    }
    fn encode_rows(&self, rows: &[&[u32]], pad: u32) -> dlm_models::Result<Tensor> {
        self.uncached.set(self.uncached.get() + rows.iter().map(|r| r.len()).sum::<usize>());
        self.model.encode_rows(rows, pad)
    }
    fn encode_cached(&self, ids: &[u32], pad: u32, fresh: &[Range<usize>], cache: &mut KvCache) -> dlm_models::Result<Tensor> {
        self.cached.set(self.cached.get() + fresh.iter().map(|r| r.len()).sum::<usize>());
        self.cached_calls.set(self.cached_calls.get() + 1);
        self.model.encode_cached(ids, pad, fresh, cache)
    }
    /// Counted as the rows' `encode_cached` calls, run as the backbone runs them (packed).
    fn encode_cached_rows(&self, rows: &mut [CachedRow<'_>], pad: u32) -> dlm_models::Result<Tensor> {
        self.cached.set(self.cached.get() + rows.iter().flat_map(|r| r.fresh).map(|r| r.len()).sum::<usize>());
        self.cached_calls.set(self.cached_calls.get() + rows.len());
        self.model.encode_cached_rows(rows, pad)
    }
    fn project(&self, hidden: &Tensor) -> dlm_models::Result<Tensor> {
        self.model.project(hidden)
    }
    fn project_log_probs(&self, hidden: &Tensor, excluded: u32) -> dlm_models::Result<Tensor> {
        self.model.project_log_probs(hidden, excluded)
    }
    fn project_argmax(&self, hidden: &Tensor, excluded: u32) -> dlm_models::Result<Vec<Argmax>> {
        self.model.project_argmax(hidden, excluded)
    }
    fn closes_canvas_with_eos(&self) -> bool {
        self.model.closes_canvas_with_eos()
    }
    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }
    fn hidden_size(&self) -> usize {
        self.model.hidden_size()
    }
    fn max_sequence_length(&self) -> usize {
        self.model.max_sequence_length()
    }
    fn device(&self) -> &Device {
        self.model.device()
    }
    fn dtype(&self) -> DType {
        self.model.dtype()
    }
}

/// The tiny XLM-R's ids (as the golden sampler fixtures use them).
const XLMR: SpecialIds = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 89 };
/// The tiny ModernBERT's (`<mask>` is its last id).
const MODERNBERT: SpecialIds = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 71 };
/// The tiny LLaDA's: `<|eot|>`-like end and padding id 1, mask 126 (bos unused).
const LLADA: SpecialIds = SpecialIds { bos: 0, eos: 1, pad: 1, mask: 126 };

fn canvases(model: &dyn MaskedLm, sp: SpecialIds, prompts: &[(&[u32], usize)]) -> Vec<Canvas> {
    prompts.iter().map(|&(p, l)| Canvas::for_model(model, p, l, sp).unwrap()).collect()
}

fn strategies() -> Vec<(usize, Strategy)> {
    let reparam = |update, topk| Strategy::Reparam { update, schedule: Schedule::Cosine, topk };
    vec![
        (12, reparam(Update::Uncond, TopK::Deterministic)),
        (12, reparam(Update::Cond, TopK::Deterministic)),
        (12, reparam(Update::Uncond, TopK::Stochastic { scale: 1.0 })),
        (12, Strategy::Cmlm),
        (12, Strategy::Ar),
        (12, Strategy::LowConfidence { block_length: Some(6), remasking: Remasking::LowConfidence }),
        (1, Strategy::ConfidenceThreshold { rule: Parallel::Threshold(0.5), block_length: Some(6) }),
        (12, Strategy::Dream { alg: DreamAlg::Entropy, alg_temp: None, top_p: None, top_k: None }),
    ]
}

fn masks(d: &Denoised, sp: SpecialIds) -> usize {
    d.generated.iter().filter(|&&t| t == sp.mask).count()
}

fn check(name: &str, sp: SpecialIds, prompts: &[(&[u32], usize)]) {
    let model = Counting::load(name);
    let cs = canvases(&model, sp, prompts);
    for (steps, strategy) in strategies() {
        for decoding in [Decoding::Argmax, Decoding::Sample { temperature: 0.8 }] {
            let none = SamplerConfig { steps, strategy, decoding, seed: 7, ..SamplerConfig::default() };
            model.reset();
            let want = denoise(&model, &cs, &none, sp).unwrap();
            let uncached = model.uncached.get();
            // refresh:1 and reuse:1 refresh at every step: the uncached run, bit for bit.
            for cache in [Cache::Refresh(1), Cache::Reuse(1)] {
                let one = denoise(&model, &cs, &SamplerConfig { cache, ..none.clone() }, sp).unwrap();
                assert_eq!(one, want, "{name} {strategy:?} {decoding:?}: {cache} differs from none");
            }
            for cache in [Cache::Refresh(2), Cache::Refresh(4), Cache::Reuse(2), Cache::Reuse(4)] {
                model.reset();
                let cfg = SamplerConfig { cache, ..none.clone() };
                let got = denoise(&model, &cs, &cfg, sp).unwrap();
                let what = format!("{name} {strategy:?} {decoding:?} {cache}");
                assert_eq!(model.uncached.get(), 0, "{what}: an uncached forward ran");
                assert!(model.cached.get() < uncached, "{what}: {} positions computed, uncached {uncached}", model.cached.get());
                for ((d, w), c) in got.iter().zip(&want).zip(&cs) {
                    assert_eq!(d.ids.len(), c.ids().len(), "{what}");
                    assert_eq!(d.positions, w.positions, "{what}");
                    for (p, (&id, &orig)) in d.ids.iter().zip(c.ids()).enumerate() {
                        if !d.positions.contains(&p) {
                            assert_eq!(id, orig, "{what}: position {p} of the prompt changed");
                        }
                        assert!((id as usize) < model.vocab_size(), "{what}");
                    }
                    if !matches!(strategy, Strategy::LowConfidence { .. } | Strategy::ConfidenceThreshold { .. } | Strategy::Dream { .. }) {
                        // Strategies that forbid `<mask>`: as many masks left as uncached.
                        assert_eq!(masks(d, sp), masks(w, sp), "{what}: {:?}", d.generated);
                    }
                }
            }
        }
    }
}

#[test]
fn tiny_xlmr_refresh() {
    check("tiny-xlmr", XLMR, &[(&[0, 10, 11, 12, 13, 14, 15], 12), (&[0, 40, 41], 12)]);
}

#[test]
fn tiny_llada_refresh() {
    check("llada-tiny", LLADA, &[(&[37, 50, 110, 89, 59, 11], 12), (&[20, 21, 22], 12)]);
}

#[test]
fn tiny_modernbert_refresh() {
    // Canvases longer than the local layers' window (8).
    check("tiny-modernbert", MODERNBERT, &[(&[0, 10, 11, 12, 13, 14, 15], 12), (&[0, 40, 41], 12)]);
}

#[test]
fn refresh_applies_to_a_model_with_a_cached_forward_only() {
    // A model in causal mode has no cached forward: refresh:R > 1 is an error naming it,
    // never a silent full recompute; refresh:1 (every step a refresh) is the uncached run.
    let device = dlm_models::device_from_env("DLM_TEST_DEVICE").unwrap();
    let opts = LoadOptions { device, causal: true, ..LoadOptions::default() };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dlm-models/tests/fixtures/tiny-modernbert");
    let model = Backbone::load(&dir, &opts).unwrap();
    let sp = MODERNBERT;
    let cs = vec![Canvas::new(&[0, 10, 11], 6, sp).unwrap()];
    let cfg = SamplerConfig { steps: 4, cache: Cache::Refresh(2), ..SamplerConfig::default() };
    let e = denoise(&model, &cs, &cfg, sp).unwrap_err().to_string();
    assert!(e.contains("no cached forward") && e.contains("causal"), "{e}");
    let none = denoise(&model, &cs, &SamplerConfig { cache: Cache::None, ..cfg.clone() }, sp).unwrap();
    assert_eq!(denoise(&model, &cs, &SamplerConfig { cache: Cache::Refresh(1), ..cfg }, sp).unwrap(), none);
}

/// The positions each cache mode computes on a trained model, in the settings of
/// `scripts/bench/cache_quality.sh demo` (docs/caching.md): the first rows of a prompted
/// JSONL file, oracle length, seed 0, one canvas per run; reparam-uncond with 10 steps,
/// llada with blocks of 8 and 4 steps per block. Run by hand:
/// `DLM_REFRESH_MODEL=.cache/demo/best cargo test -p dlm-diffusion --test refresh_cache -- --ignored --nocapture`
/// (`DLM_REFRESH_DATA`, default data/demo/iwslt14-deen.jsonl; `DLM_REFRESH_ROWS`, default 100).
/// When the script's outputs are in `.cache/cache-quality/demo/`, the generated ids are
/// compared with them row by row (the last column).
#[test]
#[ignore]
fn positions_computed_on_a_trained_model() {
    let Ok(dir) = std::env::var("DLM_REFRESH_MODEL") else {
        eprintln!("skipped: set DLM_REFRESH_MODEL to a model directory");
        return;
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join(dir);
    let data = root.join(std::env::var("DLM_REFRESH_DATA").unwrap_or("data/demo/iwslt14-deen.jsonl".into()));
    let rows: usize = std::env::var("DLM_REFRESH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(100);
    let model = Counting {
        model: Backbone::load(&dir, &LoadOptions::default()).unwrap(),
        uncached: Cell::new(0),
        cached: Cell::new(0),
        cached_calls: Cell::new(0),
    };
    let tok = dlm_data::Tokenizer::for_model(&dir, None).unwrap();
    let sp = SpecialIds::from(tok.special_tokens().unwrap());
    let examples = dlm_data::read_prompt_jsonl(&data).unwrap();
    let canvases: Vec<(Canvas, usize)> = examples
        .iter()
        .take(rows)
        .map(|row| {
            let length = tok.encode(&row.targets, false).unwrap().len().max(1);
            let prefix = dlm_data::canvas_prefix(&tok, &row.inputs, sp.eos).unwrap();
            (Canvas::new(&prefix, length, sp).unwrap(), length)
        })
        .collect();
    let reparam = Strategy::Reparam { update: Update::Uncond, schedule: Schedule::Cosine, topk: TopK::Deterministic };
    let llada = Strategy::LowConfidence { block_length: Some(8), remasking: Remasking::LowConfidence };
    let generated: usize = canvases.iter().map(|(_, l)| l).sum();
    println!("{} rows, {generated} generated positions", canvases.len());
    println!("| strategy, cache | positions computed | of none | steps run | encode_cached calls (full and partial) | rows equal to the script's |");
    println!("|---|---|---|---|---|---|");
    for (label, strategy, caches) in [
        ("reparam-uncond", reparam, &[Cache::None, Cache::Refresh(2), Cache::Refresh(4), Cache::Refresh(8), Cache::Reuse(2), Cache::Reuse(4), Cache::Reuse(8)][..]),
        ("llada (blocks of 8)", llada, &[Cache::None, Cache::Prefix, Cache::Dual, Cache::Refresh(4), Cache::Reuse(4)][..]),
    ] {
        let mut base = 0;
        for &cache in caches {
            model.reset();
            let mut steps_run = 0;
            let mut outputs = Vec::new();
            for (canvas, length) in &canvases {
                let steps = if label == "reparam-uncond" { 10 } else { 4 * length.div_ceil(8) };
                let cfg = SamplerConfig { steps, strategy, seed: 0, cache, ..SamplerConfig::default() };
                let out = denoise(&model, std::slice::from_ref(canvas), &cfg, sp).unwrap().remove(0);
                steps_run += out.steps;
                outputs.push(out.generated);
            }
            let name = format!("{}-{cache}.jsonl", if label == "reparam-uncond" { "reparam" } else { "llada" });
            let equal = match std::fs::read_to_string(root.join(".cache/cache-quality/demo").join(name)) {
                Ok(text) => {
                    let script: Vec<Vec<u32>> = text
                        .lines()
                        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["generated_ids"].clone())
                        .map(|v| serde_json::from_value(v).unwrap())
                        .collect();
                    format!("{}/{}", script.iter().zip(&outputs).filter(|(a, b)| a == b).count(), script.len())
                }
                Err(_) => "–".into(),
            };
            let computed = model.uncached.get() + model.cached.get();
            if cache == Cache::None {
                base = computed;
            }
            let pct = 100.0 * computed as f64 / base as f64;
            println!("| {label}, {cache} | {computed} | {pct:.1} % | {steps_run} | {} | {equal} |", model.cached_calls.get());
        }
    }
}
