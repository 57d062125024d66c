//! `MaskedLm::encode_cached` (Fast-dLLM's prefix and dual KV caches, dKV-Cache's sets of
//! positions) on the tiny LLaDA, Dream and BERT-family checkpoints: with nothing outside
//! the computed positions changed since the cache was filled, a cached forward over a
//! block (prefix: the block to the end of the sequence; dual: the block alone) or over any
//! set of positions gives the uncached forward's states at those positions (within 1e-5
//! in f32), Dream's one-position shift and padding keys included; the full forward that
//! fills the cache is the uncached forward itself; misuse is an error.

// `&[a..b]` is a set of positions holding one run, exactly what is meant.
#![allow(clippy::single_range_in_vec_init)]

use candle_core::{DType, Device, Tensor};
use dlm_models::{Backbone, KvCache, LoadOptions, MaskedLm};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn device() -> Device {
    dlm_models::device_from_env("DLM_TEST_DEVICE").unwrap()
}

fn load(dir: &str, dtype: DType) -> Backbone {
    let opts = LoadOptions { dtype, device: device(), ..LoadOptions::default() };
    Backbone::load(&fixtures().join(dir), &opts).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_dtype(DType::F32).unwrap().to_vec2().unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0.0, f32::max)
}

/// A prompt and 16 masks (LLaDA's and Dream's canvas), as in the golden generation cases.
fn canvas() -> Vec<u32> {
    let mut ids = vec![37, 50, 110, 89, 59, 11];
    ids.extend([126; 16]);
    ids
}

/// The uncached states of `ids`: [len, hidden].
fn uncached(model: &Backbone, ids: &[u32]) -> Vec<Vec<f32>> {
    rows(&model.encode_rows(&[ids], 1).unwrap())
}

/// Fills a cache with `ids` and checks that cached forwards over each block, prefix (the
/// block to the end) and dual (the block alone), give the uncached states there.
fn check_blocks(name: &str, model: &Backbone, ids: &[u32], pad: u32, blocks: &[(usize, usize)]) {
    let len = ids.len();
    let full = rows(&model.encode_rows(&[ids], pad).unwrap());
    let mut cache = KvCache::new();
    let filled = rows(&model.encode_cached(ids, pad, &[0..len], &mut cache).unwrap());
    assert_eq!(cache.len(), len);
    assert!(max_diff(&filled, &full) < 1e-5, "{name}: the filling forward differs from encode_rows");
    for &(a, b) in blocks {
        for (mode, fresh) in [("prefix", a..len), ("dual", a..b)] {
            let got = rows(&model.encode_cached(ids, pad, std::slice::from_ref(&fresh), &mut cache).unwrap());
            assert_eq!(got.len(), fresh.len());
            let d = max_diff(&got, &full[fresh.clone()]);
            assert!(d < 1e-5, "{name} {mode} {fresh:?}: max |cached − uncached| = {d}");
        }
    }
}

#[test]
fn cached_block_forwards_equal_the_uncached_forward() {
    for name in ["llada-tiny", "dream-tiny"] {
        let model = load(name, DType::F32);
        let mut ids = canvas();
        // A canvas partway through generation: some positions decoded, in and after the block.
        ids[7] = 51;
        ids[15] = 30;
        // Blocks of 8 after the 6 prompt positions, and blocks that start at 0 or 1 (Dream's
        // shift reads the position before the block).
        check_blocks(name, &model, &ids, 1, &[(6, 14), (14, 22), (0, 8), (1, 9), (6, 7), (21, 22)]);
        // Logits through the head agree as well.
        let mut cache = KvCache::new();
        model.encode_cached(&ids, 1, &[0..ids.len()], &mut cache).unwrap();
        let got = model.project(&model.encode_cached(&ids, 1, &[6..14], &mut cache).unwrap()).unwrap();
        let want = model.project(&model.encode_rows(&[&ids], 1).unwrap().narrow(0, 6, 8).unwrap()).unwrap();
        let d = max_diff(&rows(&got), &rows(&want));
        assert!(d < 1e-4, "{name}: logits differ by {d}");
    }
}

#[test]
fn the_bert_family_caches_too() {
    // `<s> prompt <mask>×10 </s>` with a padding id inside the prompt (masked as a key, as
    // encode_rows masks it; RoBERTa and XLM-R count positions past it).
    for name in ["tiny-bert", "tiny-roberta", "tiny-xlmr"] {
        let model = load(name, DType::F32);
        let (ids, pad) = bert_canvas(&model);
        check_blocks(name, &model, &ids, pad, &[(6, 11), (11, 16), (0, 5), (16, 17)]);
    }
}

/// The BERT-family canvas of `the_bert_family_caches_too`, and its padding id.
fn bert_canvas(model: &Backbone) -> (Vec<u32>, u32) {
    let pad = model.config().pad_id();
    let mut ids: Vec<u32> = vec![3, 10, 11, 12, 13, 14];
    ids[2] = pad;
    ids.extend([4; 10]);
    ids.push(5);
    ids[9] = 20;
    (ids, pad)
}

#[test]
fn sets_of_positions_equal_the_uncached_forward() {
    // dKV-Cache's cached steps compute a scattered set (the masked positions and those
    // decoded at the previous step): the states at every run equal the uncached ones, the
    // returned rows follow the runs' order, and touching runs are the same computation as
    // one range.
    let sets: [&[std::ops::Range<usize>]; 4] = [&[0..2, 5..7, 9..10], &[1..3, 8..9, 12..16], &[3..4], &[0..1, 15..17]];
    for name in ["llada-tiny", "dream-tiny", "tiny-bert", "tiny-roberta", "tiny-xlmr"] {
        let model = load(name, DType::F32);
        let (ids, pad) = if name.ends_with("tiny") {
            let mut ids = canvas();
            ids[7] = 51;
            ids[15] = 30;
            (ids, 1)
        } else {
            bert_canvas(&model)
        };
        let full = rows(&model.encode_rows(&[&ids], pad).unwrap());
        let mut cache = KvCache::new();
        model.encode_cached(&ids, pad, &[0..ids.len()], &mut cache).unwrap();
        for set in sets {
            let got = rows(&model.encode_cached(&ids, pad, set, &mut cache).unwrap());
            let want: Vec<Vec<f32>> = set.iter().flat_map(|r| full[r.clone()].to_vec()).collect();
            let d = max_diff(&got, &want);
            assert!(d < 1e-5, "{name} {set:?}: max |cached − uncached| = {d}");
        }
        let split = rows(&model.encode_cached(&ids, pad, &[6..9, 9..14], &mut cache).unwrap());
        let whole = rows(&model.encode_cached(&ids, pad, &[6..14], &mut cache).unwrap());
        assert_eq!(split, whole, "{name}: touching runs differ from one range");
        // Runs out of order, overlapping, empty or past the end are refused.
        for bad in [&[6..9, 2..4][..], &[6..9, 8..10], &[6..9, 9..9], &[6..40], &[]] {
            assert!(model.encode_cached(&ids, pad, bad, &mut cache).is_err(), "{name} {bad:?}");
        }
    }
}

#[test]
fn the_cache_keeps_the_keys_and_values_last_computed() {
    // Decode a position inside the dual block: the cached forward over the block sees the
    // new id (its keys and values are fresh), the rest of the sequence keeps the keys and
    // values of the filling forward. Refilling after the change gives the uncached states
    // of the new canvas again, and a second cached call right after a first one over the
    // same block computes the same states (the block's keys were replaced, not appended).
    for name in ["llada-tiny", "dream-tiny"] {
        let model = load(name, DType::F32);
        let mut ids = canvas();
        let len = ids.len();
        let mut cache = KvCache::new();
        model.encode_cached(&ids, 1, &[0..len], &mut cache).unwrap();
        ids[8] = 96;
        let first = rows(&model.encode_cached(&ids, 1, &[6..14], &mut cache).unwrap());
        let second = rows(&model.encode_cached(&ids, 1, &[6..14], &mut cache).unwrap());
        assert_eq!(first, second, "{name}");
        let now = uncached(&model, &ids);
        // Only layer 0 of the block sees exactly the new canvas; the cached suffix is stale,
        // so the states are close to but not the uncached ones.
        assert!(max_diff(&first, &now[6..14]) > 0.0, "{name}: a stale cache changed nothing?");
        model.encode_cached(&ids, 1, &[0..len], &mut cache).unwrap();
        let refreshed = rows(&model.encode_cached(&ids, 1, &[6..14], &mut cache).unwrap());
        assert!(max_diff(&refreshed, &now[6..14]) < 1e-5, "{name}");
    }
}

#[test]
fn bf16_cached_forwards_stay_close() {
    for name in ["llada-tiny", "dream-tiny"] {
        let model = load(name, DType::BF16);
        let ids = canvas();
        let len = ids.len();
        let full = uncached(&model, &ids);
        let mut cache = KvCache::new();
        model.encode_cached(&ids, 1, &[0..len], &mut cache).unwrap();
        for fresh in [6..len, 6..14, 14..22] {
            let got = rows(&model.encode_cached(&ids, 1, std::slice::from_ref(&fresh), &mut cache).unwrap());
            let scale = full[fresh.clone()].iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
            let d = max_diff(&got, &full[fresh.clone()]);
            assert!(d <= 0.05 * scale, "{name} bf16 {fresh:?}: {d} (largest |state| {scale})");
        }
    }
}

#[test]
fn misuse_is_an_error() {
    let model = load("llada-tiny", DType::F32);
    let ids = canvas();
    let mut cache = KvCache::new();
    // A partial forward needs a filled cache of the same length.
    let e = model.encode_cached(&ids, 1, &[6..14], &mut cache).unwrap_err().to_string();
    assert!(e.contains("fill the cache"), "{e}");
    model.encode_cached(&ids, 1, &[0..ids.len()], &mut cache).unwrap();
    let e = model.encode_cached(&ids[..20], 1, &[6..14], &mut cache).unwrap_err().to_string();
    assert!(e.contains("the sequence has 20"), "{e}");
    assert!(model.encode_cached(&ids, 1, &[14..14], &mut cache).is_err());
    assert!(model.encode_cached(&ids, 1, &[14..30], &mut cache).is_err());
    // A backbone without a cached path names its model type.
    let modernbert = load("tiny-modernbert", DType::F32);
    let e = modernbert.encode_cached(&[2, 5, 6, 3], 1, &[0..4], &mut KvCache::new()).unwrap_err().to_string();
    assert!(e.contains("model_type \"modernbert\"") && e.contains("no cached forward"), "{e}");
}

