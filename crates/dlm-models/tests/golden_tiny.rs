//! Logits and hidden states of tiny random checkpoints of every family (BERT tied, BERT with
//! legacy gamma/beta names and no prefix, BERT untied from a PyTorch pickle, RoBERTa from
//! sharded safetensors with a left-padded row, XLM-R untied with its own decoder bias,
//! ModernBERT bias-free and tied, ModernBERT with every bias but the decoder's, untied,
//! with a left-padded row; both with sequences long enough for the sliding window) equal
//! those of `transformers` on padded batches.
//! Fixtures: scripts/reference/make_tiny_models.py, scripts/reference/make_tiny_modernbert.py.
//! The models run on the device `DLM_TEST_DEVICE` names (default cpu; `cuda` on a GPU build).

use candle_core::{DType, Device, Tensor};
use dlm_models::{Backbone, LoadOptions, MaskedLm};
use std::path::PathBuf;

const MODELS: [&str; 7] = [
    "tiny-bert",
    "tiny-bert-legacy",
    "tiny-bert-untied-bin",
    "tiny-roberta",
    "tiny-xlmr",
    "tiny-modernbert",
    "tiny-modernbert-biased",
];

fn device() -> Device {
    dlm_models::device_from_env("DLM_TEST_DEVICE").unwrap()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

struct Golden {
    ids: Tensor,
    mask: Tensor,
    logits: Tensor,
    hidden: Tensor,
}

fn golden(name: &str) -> Golden {
    let text = std::fs::read_to_string(fixture(name).join("golden.json")).unwrap();
    let g: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ints = |k: &str| -> Tensor {
        let rows: Vec<Vec<u32>> = serde_json::from_value(g[k].clone()).unwrap();
        Tensor::new(rows, &device()).unwrap()
    };
    let floats = |k: &str| -> Tensor {
        let x: Vec<Vec<Vec<f32>>> = serde_json::from_value(g[k].clone()).unwrap();
        Tensor::new(x, &Device::Cpu).unwrap()
    };
    Golden { ids: ints("input_ids"), mask: ints("attention_mask"), logits: floats("logits"), hidden: floats("hidden") }
}

/// max |a - b| over the positions where `mask` is 1 (padding outputs are unspecified).
fn max_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let (a, mask) = (a.to_device(&Device::Cpu).unwrap(), mask.to_device(&Device::Cpu).unwrap());
    let m = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    let d = (a.to_dtype(DType::F32).unwrap() - b).unwrap().abs().unwrap().broadcast_mul(&m).unwrap();
    d.flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn f32_logits_match_transformers() {
    for name in MODELS {
        let g = golden(name);
        let model = Backbone::load(&fixture(name), &LoadOptions { device: device(), ..LoadOptions::default() }).unwrap();
        let hidden = model.encode(&g.ids, &g.mask).unwrap();
        let logits = model.project(&hidden).unwrap();
        assert_eq!(logits.dims(), g.logits.dims(), "{name}");
        let (dh, dl) = (max_diff(&hidden, &g.hidden, &g.mask), max_diff(&logits, &g.logits, &g.mask));
        assert!(dh < 1e-4 && dl < 1e-4, "{name}: hidden differs by {dh}, logits by {dl}");
    }
}

#[test]
fn bf16_logits_track_f32() {
    for name in MODELS {
        let g = golden(name);
        let opts = LoadOptions { dtype: DType::BF16, device: device(), ..LoadOptions::default() };
        let model = Backbone::load(&fixture(name), &opts).unwrap();
        let logits = model.logits(&g.ids, &g.mask).unwrap();
        assert_eq!(logits.dtype(), DType::BF16);
        // bf16 keeps 8 mantissa bits; logits here are O(10), so errors of a few 0.1 are
        // expected, while any wrong tensor would give errors of the logits' own size.
        let scale = g.logits.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        let d = max_diff(&logits, &g.logits, &g.mask);
        assert!(d < 0.05 * scale, "{name}: bf16 logits differ by {d} (scale {scale})");
    }
}

#[test]
fn parameter_counts_split_embeddings() {
    let model = Backbone::load(&fixture("tiny-bert"), &LoadOptions::default()).unwrap();
    let c = model.parameter_counts();
    // word 64x32 + position 24x32 + token type 2x32 + LayerNorm 2x32 = 2048+768+64+64
    assert_eq!(c.embedding, 2048 + 768 + 64 + 64);
    // per layer: 4 x (32x32+32) + 2 x 2x32 + (48x32+48) + (32x48+32) = 4224+128+1584+1568
    // head: dense 32x32+32, LayerNorm 64, decoder bias 64 (decoder weight tied)
    assert_eq!(c.non_embedding, 2 * (4224 + 128 + 1584 + 1568) + (1056 + 64 + 64));
    assert_eq!(c.total, c.embedding + c.non_embedding);
}
