//! The backbone's fused greedy head (`MaskedLm::project_argmax`: transform, then the
//! decoder reduced block by block without writing logits) against the composed path
//! (`composed_project_argmax`: full logits → log_softmax → argmax, max), through the public
//! trait: tokens identical, log p within 1e-5, for loaded checkpoints (tied and untied
//! decoders, non-zero decoder bias, LLaDA's and Dream's unbiased ones) and a 50,000-id
//! vocabulary, in f32 and bf16.

use candle_core::{DType, Device, Tensor};
use dlm_models::{Argmax, Backbone, LoadOptions, MaskedLm, composed_project_argmax};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn opts(dtype: DType) -> LoadOptions {
    LoadOptions { dtype, ..LoadOptions::default() }
}

/// `[rows, hidden]` hidden states, standard-normal-ish, in `dtype`.
fn hidden(rows: usize, h: usize, dtype: DType) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(rows as u64);
    let v: Vec<f32> = (0..rows * h).map(|_| rng.random_range(-1.7f32..1.7)).collect();
    Tensor::from_vec(v, (rows, h), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn assert_fused_equals_composed(model: &Backbone, rows: usize, excluded: &[u32], what: &str) {
    let x = hidden(rows, model.hidden_size(), model.dtype());
    for &e in excluded {
        let fused: Vec<Argmax> = model.project_argmax(&x, e).unwrap();
        let plain = composed_project_argmax(model, &x, e).unwrap();
        assert_eq!(fused.len(), rows);
        for (i, (f, p)) in fused.iter().zip(&plain).enumerate() {
            assert_eq!(f.token, p.token, "{what}, excluded {e}, row {i}: token");
            assert!((f.logp - p.logp).abs() <= 1e-5, "{what}, excluded {e}, row {i}: log p {} vs {}", f.logp, p.logp);
            assert_ne!(f.token, e, "{what}: the excluded id was chosen");
        }
    }
}

#[test]
fn fused_head_equals_composed_on_tiny_checkpoints() {
    // LLaDA's and Dream's projections have no bias; in f32 their decoders are
    // column-major, whose products of up to 64 rows take the skinny kernel (37 rows) and
    // taller ones the GEMM (300 rows).
    for name in ["tiny-xlmr", "tiny-bert", "tiny-roberta", "tiny-bert-untied-bin", "llada-tiny", "dream-tiny"] {
        for dtype in [DType::F32, DType::BF16] {
            let model = Backbone::load(&tiny(name), &opts(dtype)).unwrap();
            let v = model.vocab_size() as u32;
            for rows in [1, 37, 300] {
                assert_fused_equals_composed(&model, rows, &[0, v / 2, v - 1], &format!("{name} {dtype:?} {rows} rows"));
            }
        }
    }
}

/// A random model with a 50,000-id vocabulary: the vocabulary blocks do not divide it,
/// the excluded id sits in the first, a middle and the last block.
#[test]
fn fused_head_equals_composed_on_a_large_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    large_vocab_config(dir.path(), 50_000);
    for dtype in [DType::F32, DType::BF16] {
        let model = Backbone::init_random(dir.path(), &opts(dtype), 3).unwrap();
        assert_fused_equals_composed(&model, 37, &[4, 25_000, 49_999], &format!("50k {dtype:?}"));
    }
}

/// tiny-xlmr's config.json with `vocab_size` replaced, written into `dir`.
fn large_vocab_config(dir: &Path, vocab: usize) {
    let text = std::fs::read_to_string(tiny("tiny-xlmr").join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["vocab_size"] = vocab.into();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}
