//! What training needs from a backbone: save → load round trip, seeded dropout, causal
//! attention, random initialisation, vocabulary pruning (SPEC §6); ModernBERT's own rules
//! are in `modernbert.rs`.

use candle_core::{DType, Device, IndexOp, Tensor};
use dlm_models::{Backbone, LoadOptions, MaskedLm};
use std::path::PathBuf;

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn batch() -> (Tensor, Tensor) {
    let ids = Tensor::new(&[[0u32, 5, 9, 17, 40, 2], [0, 7, 8, 2, 1, 1]], &Device::Cpu).unwrap();
    let mask = ids.ne(1u32).unwrap().to_dtype(DType::U32).unwrap();
    (ids, mask)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn save_then_load_gives_identical_logits() {
    for name in ["tiny-xlmr", "tiny-bert", "tiny-roberta", "tiny-modernbert", "tiny-modernbert-biased"] {
        let model = Backbone::load(&tiny(name), &LoadOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let again = Backbone::load(dir.path(), &LoadOptions::default()).unwrap();
        let ids = Tensor::new(&[[2u32, 5, 9, 17, 3]], &Device::Cpu).unwrap();
        let mask = ids.ones_like().unwrap();
        let d = max_diff(&model.logits(&ids, &mask).unwrap(), &again.logits(&ids, &mask).unwrap());
        assert_eq!(d, 0.0, "{name}");
        assert_eq!(model.parameter_counts(), again.parameter_counts(), "{name}");
    }
}

#[test]
fn dropout_is_seeded_and_off_by_default() {
    let model = Backbone::load(&tiny("tiny-xlmr"), &LoadOptions::default()).unwrap();
    let (ids, mask) = batch();
    let eval = model.logits(&ids, &mask).unwrap();
    model.set_dropout(Some(3));
    let a = model.logits(&ids, &mask).unwrap();
    model.set_dropout(Some(3));
    let b = model.logits(&ids, &mask).unwrap();
    model.set_dropout(Some(4));
    let c = model.logits(&ids, &mask).unwrap();
    model.set_dropout(None);
    let eval_again = model.logits(&ids, &mask).unwrap();
    assert_eq!(max_diff(&a, &b), 0.0, "same seed, same masks");
    assert!(max_diff(&a, &c) > 1e-3, "another seed, other masks");
    assert!(max_diff(&a, &eval) > 1e-3, "dropout changes the output");
    assert_eq!(max_diff(&eval, &eval_again), 0.0);
}

#[test]
fn causal_attention_ignores_later_tokens() {
    for name in ["tiny-xlmr", "tiny-modernbert"] {
        let opts = LoadOptions { causal: true, ..LoadOptions::default() };
        let model = Backbone::load(&tiny(name), &opts).unwrap();
        let a = Tensor::new(&[[0u32, 5, 9, 17, 40, 2]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[0u32, 5, 9, 60, 61, 2]], &Device::Cpu).unwrap();
        let mask = a.ones_like().unwrap();
        let (la, lb) = (model.logits(&a, &mask).unwrap(), model.logits(&b, &mask).unwrap());
        // Positions 0..3 see only tokens 0..3, which agree; position 3 onwards differ.
        assert_eq!(max_diff(&la.i((.., ..3)).unwrap(), &lb.i((.., ..3)).unwrap()), 0.0, "{name}");
        assert!(max_diff(&la.i((.., 3..)).unwrap(), &lb.i((.., 3..)).unwrap()) > 1e-3, "{name}");
        // The bidirectional model does see later tokens.
        let bi = Backbone::load(&tiny(name), &LoadOptions::default()).unwrap();
        let (ba, bb) = (bi.logits(&a, &mask).unwrap(), bi.logits(&b, &mask).unwrap());
        assert!(max_diff(&ba.i((.., ..3)).unwrap(), &bb.i((.., ..3)).unwrap()) > 1e-3, "{name}");
    }
}

#[test]
fn random_init_is_seeded_and_follows_hf_rules() {
    let a = Backbone::init_random(&tiny("tiny-xlmr"), &LoadOptions::default(), 11).unwrap();
    let b = Backbone::init_random(&tiny("tiny-xlmr"), &LoadOptions::default(), 11).unwrap();
    let c = Backbone::init_random(&tiny("tiny-xlmr"), &LoadOptions::default(), 12).unwrap();
    let get = |m: &Backbone, n: &str| m.params().tensors().iter().find(|(k, _)| k == n).unwrap().1.clone();
    let w = "roberta.encoder.layer.0.attention.self.query.weight";
    assert_eq!(max_diff(&get(&a, w), &get(&b, w)), 0.0);
    assert!(max_diff(&get(&a, w), &get(&c, w)) > 0.0);
    // normal(0, 0.02): the sample std of 1024 draws is within 10% of 0.02.
    let std = get(&a, w).sqr().unwrap().mean_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
    assert!((std - 0.02).abs() < 0.002, "{std}");
    let ln = get(&a, "roberta.embeddings.LayerNorm.weight").to_vec1::<f32>().unwrap();
    assert!(ln.iter().all(|&x| x == 1.0));
    // padding row (id 1) of the word embeddings is zero
    let pad_row = get(&a, "roberta.embeddings.word_embeddings.weight").i(1).unwrap().abs().unwrap().sum_all().unwrap();
    assert_eq!(pad_row.to_scalar::<f32>().unwrap(), 0.0);
    assert!(!a.fresh_head());
}

#[test]
fn pruned_model_gives_the_kept_columns_of_the_full_logits() {
    for name in ["tiny-xlmr", "tiny-bert", "tiny-modernbert", "tiny-modernbert-biased"] {
        let full = Backbone::load(&tiny(name), &LoadOptions::default()).unwrap();
        let pad = full.config().pad_id();
        // keep the first ids up to the pad, then a sparse subset of the rest
        let keep: Vec<u32> = (0..full.vocab_size() as u32).filter(|&i| i <= pad + 3 || i % 3 == 0).collect();
        let pruned = full.prune_vocab(&keep).unwrap();
        assert_eq!(pruned.vocab_size(), keep.len());
        assert!(pruned.parameter_counts().total < full.parameter_counts().total);
        // Same text in both id spaces: original ids ↔ their index in `keep`.
        let original: Vec<u32> = keep.iter().copied().filter(|&i| i != pad).take(6).collect();
        let remapped: Vec<u32> = original.iter().map(|id| keep.iter().position(|k| k == id).unwrap() as u32).collect();
        let ids_full = Tensor::new(original.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let ids_pruned = Tensor::new(remapped.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let mask = ids_full.ones_like().unwrap();
        let index = Tensor::new(keep.as_slice(), &Device::Cpu).unwrap();
        let want = full.logits(&ids_full, &mask).unwrap().index_select(&index, 2).unwrap();
        let got = pruned.logits(&ids_pruned, &mask).unwrap();
        assert!(max_diff(&want, &got) < 1e-5, "{name}");
        // Saved and reloaded, the pruned model is untied and the same.
        let dir = tempfile::tempdir().unwrap();
        pruned.save(dir.path()).unwrap();
        let again = Backbone::load(dir.path(), &LoadOptions::default()).unwrap();
        assert!(!again.config().tie_word_embeddings);
        assert_eq!(max_diff(&again.logits(&ids_pruned, &mask).unwrap(), &got), 0.0);
        // The decoder bias is saved under both HF names (transformers ≥ 5 does not fill
        // `*.decoder.bias` from `*.bias` in an untied model).
        let saved = candle_core::safetensors::load(dir.path().join("model.safetensors"), &Device::Cpu).unwrap();
        let names = match name {
            "tiny-bert" => Some(("cls.predictions.bias", "cls.predictions.decoder.bias")),
            "tiny-xlmr" => Some(("lm_head.bias", "lm_head.decoder.bias")),
            _ => None, // ModernBERT: one name
        };
        if let Some((bias, alias)) = names {
            assert_eq!(max_diff(&saved[bias], &saved[alias]), 0.0, "{name}");
            assert_eq!(saved[alias].dims(), [keep.len()], "{name}");
        }
    }
}

#[test]
fn pruning_rejects_bad_keep_lists() {
    let full = Backbone::load(&tiny("tiny-xlmr"), &LoadOptions::default()).unwrap();
    let e = full.prune_vocab(&[0, 1, 2, 500]).unwrap_err().to_string();
    assert!(e.contains("cannot keep id 500"), "{e}");
    let e = full.prune_vocab(&[0, 1, 2, 2]).unwrap_err().to_string();
    assert!(e.contains("kept twice"), "{e}");
    let e = full.prune_vocab(&[0, 2, 1]).unwrap_err().to_string();
    assert!(e.contains("padding id 1 must keep its index"), "{e}");
}
