//! ModernBERT beyond the golden logits (`golden_tiny.rs`): a saved model has exactly
//! `transformers`' tensor names and a ModernBERT config; fresh weights follow HF's
//! `_init_weights`; gradients reach every parameter; sequences are limited by
//! `max_position_embeddings` only (no 512 cap); the golden batch does depend on the
//! sliding window; bad ModernBERT fields are named.

use candle_core::{DType, Device, IndexOp, Tensor};
use dlm_models::{Backbone, LoadOptions, MaskedLm, ModelError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A copy of a fixture with `edit` applied to its config.json.
fn with_config(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "golden.json"] {
        std::fs::copy(tiny(name).join(f), dir.path().join(f)).unwrap();
    }
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
    dir
}

fn tensor_names(file: &Path) -> BTreeSet<String> {
    candle_core::safetensors::load(file, &Device::Cpu)
        .unwrap()
        .into_keys()
        .collect()
}

fn get(m: &Backbone, name: &str) -> Tensor {
    m.params()
        .tensors()
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
        .clone()
}

fn scalar(t: Tensor) -> f32 {
    t.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn saved_model_has_transformers_names_and_a_modernbert_config() {
    for name in ["tiny-modernbert", "tiny-modernbert-biased"] {
        let model = Backbone::load(&tiny(name), &LoadOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let saved = tensor_names(&dir.path().join("model.safetensors"));
        assert_eq!(
            saved,
            tensor_names(&tiny(name).join("model.safetensors")),
            "{name}"
        );
        assert!(saved.contains("model.layers.1.attn_norm.weight"));
        assert!(
            !saved.contains("model.layers.0.attn_norm.weight"),
            "layer 0 has no attn_norm"
        );
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        let config: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(config["model_type"], "modernbert");
        assert_eq!(config["local_attention"], 8);
        for bert_only in [
            "hidden_act",
            "layer_norm_eps",
            "type_vocab_size",
            "position_embedding_type",
        ] {
            assert!(
                config.get(bert_only).is_none(),
                "{name}: {bert_only} written"
            );
        }
    }
    // The default fixture has no biases but the decoder's.
    let names = tensor_names(&tiny("tiny-modernbert").join("model.safetensors"));
    let biases: Vec<&String> = names.iter().filter(|n| n.ends_with(".bias")).collect();
    assert_eq!(biases, ["decoder.bias"]);
}

#[test]
fn random_init_follows_hf_init_weights() {
    let a = Backbone::init_random(&tiny("tiny-modernbert"), &LoadOptions::default(), 5).unwrap();
    let b = Backbone::init_random(&tiny("tiny-modernbert"), &LoadOptions::default(), 5).unwrap();
    let w = "model.layers.1.attn.Wqkv.weight";
    assert_eq!(
        scalar(
            (get(&a, w) - get(&b, w))
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
        ),
        0.0
    );
    // Inputs ~ N(0, 0.02), outputs ~ N(0, 0.02/√(2·3)), both truncated at ±2σ, whose std
    // is 0.88σ.
    for (name, sigma) in [
        (w, 0.02f32),
        ("model.layers.2.mlp.Wo.weight", 0.02 / 6f32.sqrt()),
        ("head.dense.weight", 0.02 / 6f32.sqrt()),
    ] {
        let t = get(&a, name);
        let std = scalar(t.sqr().unwrap().mean_all().unwrap().sqrt().unwrap());
        assert!(
            (std - 0.88 * sigma).abs() < 0.12 * sigma,
            "{name}: std {std}, σ {sigma}"
        );
        assert!(
            scalar(t.abs().unwrap().max_all().unwrap()) <= 2.0 * sigma + 1e-7,
            "{name} not truncated"
        );
    }
    for norm in [
        "model.embeddings.norm.weight",
        "model.layers.1.attn_norm.weight",
        "model.final_norm.weight",
        "head.norm.weight",
    ] {
        assert!(
            get(&a, norm)
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .all(|&x| x == 1.0),
            "{norm}"
        );
    }
    assert_eq!(
        scalar(get(&a, "decoder.bias").abs().unwrap().sum_all().unwrap()),
        0.0
    );
    // HF's trunc_normal_ overwrites the whole embedding, padding row included.
    let pad_row = get(&a, "model.embeddings.tok_embeddings.weight")
        .i(1)
        .unwrap();
    assert!(scalar(pad_row.abs().unwrap().sum_all().unwrap()) > 0.0);
}

#[test]
fn gradients_reach_every_parameter() {
    for name in ["tiny-modernbert", "tiny-modernbert-biased"] {
        let opts = LoadOptions {
            trainable: true,
            ..LoadOptions::default()
        };
        let model = Backbone::load(&tiny(name), &opts).unwrap();
        let ids = Tensor::new(
            &[[0u32, 5, 9, 17, 40, 22, 30, 11, 12, 13, 2, 1]],
            &Device::Cpu,
        )
        .unwrap();
        let mask = ids.ne(1u32).unwrap().to_dtype(DType::U32).unwrap();
        let loss = model
            .logits(&ids, &mask)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        assert_eq!(model.params().vars().len(), model.params().tensors().len());
        for (param, var) in model.params().vars() {
            let g = grads
                .get(var)
                .unwrap_or_else(|| panic!("{name}: no gradient for {param}"));
            assert!(
                scalar(g.abs().unwrap().sum_all().unwrap()) > 0.0,
                "{name}: zero gradient for {param}"
            );
        }
    }
}

#[test]
fn sequences_are_limited_by_max_position_embeddings_only() {
    // The weights do not depend on max_position_embeddings (rotary positions).
    let dir = with_config("tiny-modernbert", |c| {
        c["max_position_embeddings"] = 8192.into()
    });
    let model = Backbone::load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(model.max_sequence_length(), 8192);
    let ids: Vec<u32> = (0..600u32).map(|i| 3 + i % 60).collect();
    let ids = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model.logits(&ids, &ids.ones_like().unwrap()).unwrap();
    assert_eq!(logits.dims(), [1, 600, 72]);
    assert!(scalar(logits.abs().unwrap().max_all().unwrap()).is_finite());
    let small = Backbone::load(&tiny("tiny-modernbert"), &LoadOptions::default()).unwrap();
    assert_eq!(small.max_sequence_length(), 64);
    let e = small
        .logits(
            &ids.i((.., ..65)).unwrap(),
            &ids.i((.., ..65)).unwrap().ones_like().unwrap(),
        )
        .unwrap_err();
    assert!(
        matches!(e, ModelError::TooLong { found: 65, max: 64 }),
        "{e}"
    );
}

#[test]
fn golden_batch_depends_on_the_sliding_window() {
    // With a window wider than the sequence the local layers attend globally: the logits
    // move, so the golden test does check the window.
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tiny("tiny-modernbert").join("golden.json")).unwrap(),
    )
    .unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(golden["input_ids"].clone()).unwrap();
    let ids = Tensor::new(ids, &Device::Cpu).unwrap();
    let mask = ids.ne(1u32).unwrap().to_dtype(DType::U32).unwrap();
    let windowed = Backbone::load(&tiny("tiny-modernbert"), &LoadOptions::default()).unwrap();
    let dir = with_config("tiny-modernbert", |c| c["local_attention"] = 64.into());
    let wide = Backbone::load(dir.path(), &LoadOptions::default()).unwrap();
    let (a, b) = (
        windowed.logits(&ids, &mask).unwrap(),
        wide.logits(&ids, &mask).unwrap(),
    );
    // Row 0 (20 tokens) reaches beyond the ±4 window; the 4 tokens of row 2 do not.
    let diff = |r: usize, n: usize| {
        let d = (a.i((r, ..n)).unwrap() - b.i((r, ..n)).unwrap()).unwrap();
        scalar(d.abs().unwrap().max_all().unwrap())
    };
    assert!(diff(0, 20) > 1e-2, "{}", diff(0, 20));
    assert!(diff(2, 4) < 1e-5, "{}", diff(2, 4));
}

#[test]
fn bad_modernbert_fields_are_named() {
    let cases: [(&str, serde_json::Value, &str); 4] = [
        (
            "global_attn_every_n_layers",
            0.into(),
            "global_attn_every_n_layers must be at least 1",
        ),
        ("hidden_activation", "swish".into(), "swish"),
        (
            "rope_scaling",
            serde_json::json!({"rope_type": "linear", "factor": 2.0}),
            "rope_scaling is not supported",
        ),
        ("num_attention_heads", 32.into(), "even head size"),
    ];
    for (key, value, expected) in cases {
        let dir = with_config("tiny-modernbert", |c| c[key] = value);
        let e = Backbone::load(dir.path(), &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(expected) && e.contains("config.json"),
            "{key}: {e}"
        );
    }
}
