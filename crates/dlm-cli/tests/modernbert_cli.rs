//! The `dlm` commands on the tiny ModernBERT fixture (word-level tokenizer, `<s>` 0,
//! `</s>` 2, `<mask>` 71, 64 positions) work as on the BERT family: generate (also on a
//! canvas longer than 512 positions), fill-mask, inspect, and eval on a prompted file.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MASK: u64 = 71;

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dlm-models/tests/fixtures/tiny-modernbert")
}

fn dlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlm"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `dlm args`, which must succeed, and parses its standard output as JSON.
fn json(args: &[&str]) -> Value {
    let out = dlm(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn generate_fills_the_canvas() {
    let model = s(&tiny());
    let v = json(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "the and to of a",
        "--length",
        "6",
        "--steps",
        "3",
        "--json",
    ]);
    let canvas = ids(&v["ids"]);
    assert_eq!(&canvas[..6], &[0, 6, 7, 8, 9, 10]);
    assert_eq!((canvas.len(), canvas[12]), (13, 2));
    let generated = ids(&v["generated_ids"]);
    assert_eq!(generated.len(), 6);
    assert!(!generated.contains(&MASK));
}

#[test]
fn canvases_are_not_capped_at_512_positions() {
    // The same weights with 8,192 rotary positions, as real ModernBERT checkpoints have.
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(tiny().join(f), dir.path().join(f)).unwrap();
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(tiny().join("config.json")).unwrap())
            .unwrap();
    config["max_position_embeddings"] = 8192.into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let model = s(dir.path());
    let v = json(&[
        "generate", "--model", &model, "--prompt", "the and", "--length", "600", "--steps", "2",
        "--json",
    ]);
    assert_eq!(ids(&v["generated_ids"]).len(), 600);
    assert_eq!(ids(&v["ids"]).len(), 604);
    let i = json(&["inspect", &model, "--json"]);
    assert_eq!(i["max_sequence_length"], 8192);
}

#[test]
fn fill_mask_and_inspect() {
    let model = s(&tiny());
    let v = json(&[
        "fill-mask",
        "--model",
        &model,
        "--top-k",
        "3",
        "--json",
        "the <mask> to",
    ]);
    // One mask, three predictions in descending order of their softmax probability.
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 1, "{v}");
    let scores: Vec<f64> = preds[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .collect();
    assert_eq!(scores.len(), 3);
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]) && scores[0] <= 1.0 && scores[2] > 0.0,
        "{scores:?}"
    );
    let i = json(&["inspect", &model, "--json"]);
    assert_eq!(i["model_type"], "modernbert");
    assert_eq!(i["max_sequence_length"], 64);
}

#[test]
fn eval_scores_a_prompted_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("giga.jsonl");
    let row = "{\"inputs\": \"Summarize the article.  Article: the man went to the city . Summary: \", \"targets\": \"the man went\"}\n";
    std::fs::write(&data, row.repeat(2)).unwrap();
    let out = tmp.path().join("report.json");
    let (model, data, out_s) = (s(&tiny()), s(&data), s(&out));
    let args = [
        "eval",
        "--model",
        &model,
        "--task",
        "gigaword",
        "--data",
        &data,
        "--out",
        &out_s,
        "--oracle-length",
        "--steps",
        "2",
    ];
    let run = dlm(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report["scored"], 2, "{report}");
    assert!((0.0..=100.0).contains(&report["score"].as_f64().unwrap()));
}
