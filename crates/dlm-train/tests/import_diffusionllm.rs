//! `import_diffusionllm` against the DiffusionLLM authors' own computation: checkpoints
//! built with exactly their module structure and names (tied with an empty decoder as
//! pytorch_model.bin; untied as a bf16 DeepSpeed ZeRO-2 folder with a decoy older step;
//! vocabulary-pruned with a fairseq dict.txt), imported, then the MLM logits (1e-4), the
//! length predictor's top-B lengths (equal) and, when pruned, the ids of a text (equal to
//! the authors' dictionary ids) are compared with what their code computed.
//! Fixtures: scripts/reference/diffusionllm_checkpoints.py.

use candle_core::{Device, Tensor};
use dlm_data::{Tokenizer, VocabMap};
use dlm_diffusion::LengthPredictor;
use dlm_models::{Backbone, LoadOptions, MaskedLm};
use dlm_train::{ImportRequest, ImportSummary, import_diffusionllm};
use serde::Deserialize;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/diffusionllm")
        .join(name)
}

fn base() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dlm-models/tests/fixtures/tiny-xlmr")
}

#[derive(Deserialize)]
struct Golden {
    input_ids: Vec<Vec<u32>>,
    logits: Vec<Vec<Vec<f32>>>,
    prompts: Vec<String>,
    prefixes: Vec<Vec<u32>>,
    beam: usize,
    length_candidates: Vec<Vec<usize>>,
    kept: Option<Vec<u32>>,
    text: Option<String>,
    text_ids: Option<Vec<u32>>,
}

fn golden(name: &str) -> Golden {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("golden.json")).unwrap())
        .unwrap()
}

fn import(name: &str, dict: bool) -> (tempfile::TempDir, PathBuf, ImportSummary) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("imported");
    let req = ImportRequest {
        checkpoint: fixture(name),
        base: base(),
        out: out.clone(),
        dict: dict.then(|| fixture(name).join("dict.txt")),
    };
    let summary = import_diffusionllm(&req).unwrap();
    (tmp, out, summary)
}

/// Logits, prompt tokenization and top-B lengths of the imported model equal the golden ones.
fn check_against_golden(name: &str, out: &PathBuf) {
    let g = golden(name);
    let model = Backbone::load(out, &LoadOptions::default()).unwrap();
    let ids = Tensor::new(g.input_ids.clone(), &Device::Cpu).unwrap();
    let logits = model.logits(&ids, &ids.ones_like().unwrap()).unwrap();
    let expected = Tensor::new(g.logits.clone(), &Device::Cpu).unwrap();
    assert_eq!(logits.dims(), expected.dims(), "{name}");
    let diff = (logits - expected)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap();
    let diff = diff.to_scalar::<f32>().unwrap();
    assert!(diff < 1e-4, "{name}: logits differ by {diff}");

    let tokenizer = Tokenizer::from_dir(out).unwrap();
    let special = tokenizer.special_tokens().unwrap();
    for (prompt, prefix) in g.prompts.iter().zip(&g.prefixes) {
        let mut ids = tokenizer.encode(prompt, true).unwrap();
        assert_eq!(ids.pop(), Some(special.eos));
        assert_eq!(&ids, prefix, "{name}: {prompt:?}");
    }
    let predictor = LengthPredictor::load(out, &Device::Cpu).unwrap();
    let lengths = predictor
        .top_lengths(&model, &g.prefixes, g.beam, special.pad)
        .unwrap();
    assert_eq!(lengths, g.length_candidates, "{name}");
}

#[test]
fn tied_checkpoint_with_an_empty_decoder() {
    let (_tmp, out, s) = import("tied-bin", false);
    assert!(s.tied && !s.pruned && s.length_predictor, "{s:?}");
    assert!(s.weights_file.ends_with("pytorch_model.bin"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["tie_word_embeddings"], true);
    check_against_golden("tied-bin", &out);
}

#[test]
fn untied_bf16_zero2_folder_latest_step() {
    let (_tmp, out, s) = import("untied-zero", false);
    assert!(!s.tied && !s.pruned && s.length_predictor, "{s:?}");
    assert!(
        s.weights_file
            .ends_with("global_step12/mp_rank_00_model_states.pt"),
        "{s:?}"
    );
    check_against_golden("untied-zero", &out);
}

#[test]
fn pruned_checkpoint_with_its_fairseq_dictionary() {
    let (_tmp, out, s) = import("pruned-bin", true);
    assert!(s.pruned && !s.tied, "{s:?}");
    let g = golden("pruned-bin");
    let map = VocabMap::load(&out).unwrap().unwrap();
    assert_eq!(Some(&map.kept), g.kept.as_ref());
    assert_eq!(s.vocab_size, map.len());
    let tokenizer = Tokenizer::from_dir(&out).unwrap();
    let text = g.text.as_deref().unwrap();
    assert_eq!(
        Some(tokenizer.encode(text, true).unwrap()),
        g.text_ids,
        "the authors' dictionary ids of {text:?}"
    );
    check_against_golden("pruned-bin", &out);
}

#[test]
fn a_pruned_checkpoint_without_its_dictionary_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let req = ImportRequest {
        checkpoint: fixture("pruned-bin"),
        base: base(),
        out: tmp.path().join("x"),
        dict: None,
    };
    let e = import_diffusionllm(&req).unwrap_err().to_string();
    assert!(e.contains("--dict") && e.contains("rows"), "{e}");
    // The wrong dictionary (one line short) is named with both sizes.
    let short = tmp.path().join("dict.txt");
    let text = std::fs::read_to_string(fixture("pruned-bin").join("dict.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&short, lines[..lines.len() - 1].join("\n")).unwrap();
    let req = ImportRequest {
        dict: Some(short),
        ..req
    };
    let e = import_diffusionllm(&req).unwrap_err().to_string();
    assert!(e.contains("dict.txt") && e.contains("rows"), "{e}");
}

#[test]
fn a_non_empty_output_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("keep.txt"), "x").unwrap();
    let req = ImportRequest {
        checkpoint: fixture("tied-bin"),
        base: base(),
        out: tmp.path().into(),
        dict: None,
    };
    let e = import_diffusionllm(&req).unwrap_err().to_string();
    assert!(e.contains("not empty"), "{e}");
}
