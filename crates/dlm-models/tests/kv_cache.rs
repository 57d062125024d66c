//! `MaskedLm::encode_cached` (Fast-dLLM's prefix and dual KV caches, dKV-Cache's sets of
//! positions) on the tiny LLaDA, Dream, BERT-family and ModernBERT checkpoints: with
//! nothing outside the computed positions changed since the cache was filled, a cached
//! forward over a block (prefix: the block to the end of the sequence; dual: the block
//! alone) or over any set of positions gives the uncached forward's states at those
//! positions (within 1e-5 in f32), Dream's one-position shift, ModernBERT's rotary
//! positions and sliding windows, and padding keys included; the full forward that fills
//! the cache is the uncached forward itself; misuse is an error. Several rows in one
//! `encode_cached_rows` equal the rows one by one, and leave the same caches.

// `&[a..b]` is a set of positions holding one run, exactly what is meant.
#![allow(clippy::single_range_in_vec_init)]

use candle_core::{DType, Device, Tensor};
use dlm_models::{Backbone, CachedRow, KvCache, LoadOptions, MaskedLm};
use std::ops::Range;
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

/// Fills a cache with `ids` and checks that cached forwards over each block, prefix (the
/// block to the end) and dual (the block alone), give the uncached states there. Returns
/// the largest difference seen (the filling forward's included).
fn check_blocks(name: &str, model: &Backbone, ids: &[u32], pad: u32, blocks: &[(usize, usize)]) -> f32 {
    let len = ids.len();
    let full = rows(&model.encode_rows(&[ids], pad).unwrap());
    let mut cache = KvCache::new();
    let filled = rows(&model.encode_cached(ids, pad, &[0..len], &mut cache).unwrap());
    assert_eq!(cache.len(), len);
    // What a server budgets for the row is what the filled cache holds.
    assert_eq!(model.kv_cache_bytes(len), Some(cache.bytes()), "{name}");
    let mut worst = max_diff(&filled, &full);
    assert!(worst < 1e-5, "{name}: the filling forward differs from encode_rows by {worst}");
    for &(a, b) in blocks {
        for (mode, fresh) in [("prefix", a..len), ("dual", a..b)] {
            let got = rows(&model.encode_cached(ids, pad, std::slice::from_ref(&fresh), &mut cache).unwrap());
            assert_eq!(got.len(), fresh.len());
            let d = max_diff(&got, &full[fresh.clone()]);
            assert!(d < 1e-5, "{name} {mode} {fresh:?}: max |cached − uncached| = {d}");
            worst = worst.max(d);
        }
    }
    worst
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

/// The ModernBERT fixtures (`global_attn_every_n_layers` 2, `local_attention` 8: layer 1
/// of 3 attends within 4 positions of the query).
const MODERNBERT: [&str; 2] = ["tiny-modernbert", "tiny-modernbert-biased"];

/// `<s> prompt <mask>×16 </s>` (28 positions, several local windows long) with a padding
/// id inside the prompt and two decoded positions, and the padding id. (`<mask>` is the
/// last id of both fixtures' vocabularies, `<unk>` = 3 occurs nowhere.)
fn modernbert_canvas(model: &Backbone) -> (Vec<u32>, u32) {
    let pad = model.config().pad_id();
    let mut ids: Vec<u32> = vec![0, 10, pad, 12, 13, 14, 15, 16, 17, 18, 19];
    ids.extend(std::iter::repeat_n(model.vocab_size() as u32 - 1, 16));
    ids.push(2);
    ids[13] = 30;
    ids[22] = 40;
    (ids, pad)
}

#[test]
fn modernbert_caches_with_rotary_positions_and_local_windows() {
    // Blocks at the start, in the middle and at the end, each far enough from others that
    // the local layer's window excludes most of the sequence; single positions.
    let blocks = [(11, 19), (19, 27), (0, 8), (5, 6), (27, 28), (1, 28)];
    for name in MODERNBERT {
        let model = load(name, DType::F32);
        let (ids, pad) = modernbert_canvas(&model);
        let window = model.config().extra["local_attention"].as_u64().unwrap() as usize;
        assert!(window / 2 + 1 < ids.len() / 2, "{name}: the canvas is not longer than the local window");
        // The padding id is masked as a key by encode_rows (its states differ from those of
        // the same ids with nothing masked), and the cached forwards reproduce that.
        let unmasked = rows(&model.encode_rows(&[&ids], 3).unwrap());
        let masked = rows(&model.encode_rows(&[&ids], pad).unwrap());
        assert!(max_diff(&masked, &unmasked) > 1e-3, "{name}: the padding key changes nothing?");
        let d = check_blocks(name, &model, &ids, pad, &blocks);
        eprintln!("{name}: max |cached − uncached| over blocks = {d:e}");
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
    let names = ["llada-tiny", "dream-tiny", "tiny-bert", "tiny-roberta", "tiny-xlmr"];
    for name in names.into_iter().chain(MODERNBERT) {
        let model = load(name, DType::F32);
        let (ids, pad) = if name.ends_with("tiny") {
            let mut ids = canvas();
            ids[7] = 51;
            ids[15] = 30;
            (ids, 1)
        } else if name.contains("modernbert") {
            modernbert_canvas(&model)
        } else {
            bert_canvas(&model)
        };
        let full = rows(&model.encode_rows(&[&ids], pad).unwrap());
        let mut cache = KvCache::new();
        model.encode_cached(&ids, pad, &[0..ids.len()], &mut cache).unwrap();
        let mut worst = 0f32;
        for set in sets {
            let got = rows(&model.encode_cached(&ids, pad, set, &mut cache).unwrap());
            let want: Vec<Vec<f32>> = set.iter().flat_map(|r| full[r.clone()].to_vec()).collect();
            let d = max_diff(&got, &want);
            assert!(d < 1e-5, "{name} {set:?}: max |cached − uncached| = {d}");
            worst = worst.max(d);
        }
        eprintln!("{name}: max |cached − uncached| over sets = {worst:e}");
        let split = rows(&model.encode_cached(&ids, pad, &[6..9, 9..14], &mut cache).unwrap());
        let whole = rows(&model.encode_cached(&ids, pad, &[6..14], &mut cache).unwrap());
        assert_eq!(split, whole, "{name}: touching runs differ from one range");
        // Runs out of order, overlapping, empty or past the end are refused.
        for bad in [&[6..9, 2..4][..], &[6..9, 8..10], &[6..9, 9..9], &[6..40], &[]] {
            assert!(model.encode_cached(&ids, pad, bad, &mut cache).is_err(), "{name} {bad:?}");
        }
    }
}

/// Three sequences of different lengths from `base` (a canvas with a padding id inside):
/// `base`, a shorter one, and a longer one that ends with two padding ids.
fn three_rows(base: &[u32], pad: u32) -> Vec<Vec<u32>> {
    let n = base.len();
    let shorter: Vec<u32> = base[..n - 5].iter().chain(&base[n - 1..]).copied().collect();
    let longer: Vec<u32> = base.iter().copied().chain([pad, pad]).collect();
    vec![base.to_vec(), shorter, longer]
}

/// `encode_cached_rows` of `ids` with `sets` (one per row) through `packed`, and the same
/// rows one by one through `encode_cached` with `single`: the states of both, per row.
fn both_ways(
    model: &Backbone,
    ids: &[Vec<u32>],
    pad: u32,
    sets: &[Vec<Range<usize>>],
    packed: &mut [KvCache],
    single: &mut [KvCache],
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rows_in: Vec<CachedRow> =
        ids.iter().zip(sets).zip(packed.iter_mut()).map(|((ids, fresh), cache)| CachedRow { ids, fresh, cache }).collect();
    let got = rows(&model.encode_cached_rows(&mut rows_in, pad).unwrap());
    let mut want = Vec::new();
    for ((ids, fresh), cache) in ids.iter().zip(sets).zip(single.iter_mut()) {
        want.extend(rows(&model.encode_cached(ids, pad, fresh, cache).unwrap()));
    }
    (got, want)
}

#[test]
fn packed_rows_equal_rows_one_by_one() {
    // Rows of different lengths, padding inside and at the end, in one call: every row
    // filling its cache; then a single range, scattered runs and a refill mixed (after some
    // ids changed, so the caches are stale and the rows differ from encode_rows); then
    // other sets, which read the caches the mixed call left. The BERT family, LLaDA and
    // Dream pack the rows, ModernBERT runs them one by one.
    let names = ["tiny-bert", "tiny-roberta", "tiny-xlmr", "llada-tiny", "dream-tiny"];
    for name in names.into_iter().chain(MODERNBERT) {
        let model = load(name, DType::F32);
        let (base, pad) = if name.ends_with("tiny") {
            let mut ids = canvas();
            ids[2] = 1;
            (ids, 1)
        } else if name.contains("modernbert") {
            modernbert_canvas(&model)
        } else {
            bert_canvas(&model)
        };
        let mut ids = three_rows(&base, pad);
        let lens: Vec<usize> = ids.iter().map(|r| r.len()).collect();
        let (mut packed, mut single) = (vec![KvCache::new(); 3], vec![KvCache::new(); 3]);
        let fills: Vec<Vec<Range<usize>>> = lens.iter().map(|&len| vec![0..len]).collect();
        let (got, want) = both_ways(&model, &ids, pad, &fills, &mut packed, &mut single);
        let d = max_diff(&got, &want);
        assert!(d < 1e-5, "{name} fills: max |packed − one by one| = {d}");
        let refs: Vec<&[u32]> = ids.iter().map(|r| r.as_slice()).collect();
        let d = max_diff(&got, &rows(&model.encode_rows(&refs, pad).unwrap()));
        assert!(d < 1e-5, "{name}: packed fills differ from encode_rows by {d}");
        for (p, c) in packed.iter().zip(&single) {
            assert_eq!((p.len(), p.bytes()), (c.len(), c.bytes()), "{name}");
        }
        ids[0][7] = 30;
        ids[1][8] = 31;
        ids[2][9] = 32;
        let mixed = vec![vec![6..11], vec![0..2, 5..7, 8..9], vec![0..lens[2]]];
        let later = vec![vec![1..3, 7..8, 12..14], vec![4..5], vec![3..9, 16..lens[2]]];
        for sets in [mixed, later] {
            let (got, want) = both_ways(&model, &ids, pad, &sets, &mut packed, &mut single);
            assert_eq!(got.len(), sets.iter().flatten().map(|r| r.len()).sum::<usize>(), "{name}");
            let d = max_diff(&got, &want);
            assert!(d < 1e-5, "{name} {sets:?}: max |packed − one by one| = {d}");
        }
        // A row that cannot run fails the call; where the rows are packed, no cache changed.
        let bad = [vec![6..11], vec![4..40]];
        let mut rows_in: Vec<CachedRow> = ids[..2]
            .iter()
            .zip(&bad)
            .zip(packed.iter_mut())
            .map(|((ids, fresh), cache)| CachedRow { ids, fresh, cache })
            .collect();
        assert!(model.encode_cached_rows(&mut rows_in, pad).is_err(), "{name}");
        if !name.ends_with("tiny") && !name.contains("modernbert") {
            let sets = vec![vec![6..11], vec![0..3], vec![2..5]];
            let (got, want) = both_ways(&model, &ids, pad, &sets, &mut packed, &mut single);
            assert!(max_diff(&got, &want) < 1e-5, "{name}: a failed call changed a cache");
        }
        assert_eq!(model.encode_cached_rows(&mut [], pad).unwrap().dims(), [0, model.hidden_size()], "{name}");
    }
}

#[test]
fn the_cache_keeps_the_keys_and_values_last_computed() {
    // Decode a position inside the dual block: the cached forward over the block sees the
    // new id (its keys and values are fresh), the rest of the sequence keeps the keys and
    // values of the filling forward. Refilling after the change gives the uncached states
    // of the new canvas again, and a second cached call right after a first one over the
    // same block computes the same states (the block's keys were replaced, not appended).
    for name in ["llada-tiny", "dream-tiny"].into_iter().chain(MODERNBERT) {
        let model = load(name, DType::F32);
        let (mut ids, pad, (at, id), block) = if name.contains("modernbert") {
            let (ids, pad) = modernbert_canvas(&model);
            (ids, pad, (12, 50), 11..19)
        } else {
            (canvas(), 1, (8, 96), 6..14)
        };
        let len = ids.len();
        let mut cache = KvCache::new();
        model.encode_cached(&ids, pad, &[0..len], &mut cache).unwrap();
        ids[at] = id;
        let first = rows(&model.encode_cached(&ids, pad, std::slice::from_ref(&block), &mut cache).unwrap());
        let second = rows(&model.encode_cached(&ids, pad, std::slice::from_ref(&block), &mut cache).unwrap());
        assert_eq!(first, second, "{name}");
        let now = rows(&model.encode_rows(&[&ids], pad).unwrap());
        // Only layer 0 of the block sees exactly the new canvas; the cached suffix is stale,
        // so the states are close to but not the uncached ones.
        assert!(max_diff(&first, &now[block.clone()]) > 0.0, "{name}: a stale cache changed nothing?");
        model.encode_cached(&ids, pad, &[0..len], &mut cache).unwrap();
        let refreshed = rows(&model.encode_cached(&ids, pad, std::slice::from_ref(&block), &mut cache).unwrap());
        assert!(max_diff(&refreshed, &now[block]) < 1e-5, "{name}");
    }
}

#[test]
fn bf16_cached_forwards_stay_close() {
    for name in ["llada-tiny", "dream-tiny"].into_iter().chain(MODERNBERT) {
        let model = load(name, DType::BF16);
        let (ids, pad) = if name.contains("modernbert") { modernbert_canvas(&model) } else { (canvas(), 1) };
        let len = ids.len();
        let full = rows(&model.encode_rows(&[&ids], pad).unwrap());
        let mut cache = KvCache::new();
        model.encode_cached(&ids, pad, &[0..len], &mut cache).unwrap();
        for fresh in [6..len, 6..14, 14..22] {
            let got = rows(&model.encode_cached(&ids, pad, std::slice::from_ref(&fresh), &mut cache).unwrap());
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
    // So does ModernBERT's: a cache of another length or another model is refused.
    let modernbert = load("tiny-modernbert", DType::F32);
    let (ids, pad) = modernbert_canvas(&modernbert);
    let e = modernbert.encode_cached(&ids, pad, &[6..14], &mut cache).unwrap_err().to_string();
    assert!(e.contains("fill the cache"), "{e}");
    let mut cache = KvCache::new();
    modernbert.encode_cached(&ids, pad, &[0..ids.len()], &mut cache).unwrap();
    let e = modernbert.encode_cached(&ids[..20], pad, &[6..14], &mut cache).unwrap_err().to_string();
    assert!(e.contains("the sequence has 20"), "{e}");
    assert!(modernbert.encode_cached(&ids, pad, &[14..40], &mut cache).is_err());
    // Causal mode has no cached path; the error names the model type.
    let opts = LoadOptions { causal: true, device: device(), ..LoadOptions::default() };
    let causal = Backbone::load(&fixtures().join("tiny-modernbert"), &opts).unwrap();
    let e = causal.encode_cached(&[2, 5, 6, 3], 1, &[0..4], &mut KvCache::new()).unwrap_err().to_string();
    assert!(e.contains("model_type \"modernbert\" with causal attention") && e.contains("no cached forward"), "{e}");
}

