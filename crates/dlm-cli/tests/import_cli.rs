//! `dlm import diffusionllm` end to end, judged as a user would: the imported directory's
//! `fill-mask --ids --json` probabilities (1e-4) and `generate --json --length-beam 3`
//! length candidates equal what the authors' code computes (fixtures of dlm-train, made by
//! scripts/reference/diffusionllm_checkpoints.py).

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    root()
        .join("crates/dlm-train/tests/fixtures/diffusionllm")
        .join(name)
}

fn dlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlm"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn import(name: &str, dict: bool) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model").to_string_lossy().into_owned();
    let checkpoint = fixture(name).to_string_lossy().into_owned();
    let base = root()
        .join("crates/dlm-models/tests/fixtures/tiny-xlmr")
        .to_string_lossy()
        .into_owned();
    let dict_path = fixture(name)
        .join("dict.txt")
        .to_string_lossy()
        .into_owned();
    let mut args = vec![
        "import",
        "diffusionllm",
        "--checkpoint",
        &checkpoint,
        "--base",
        &base,
        "--out",
        &out,
    ];
    if dict {
        args.extend(["--dict", &dict_path]);
    }
    let said = ok(&dlm(&args));
    assert!(said.contains("length predictor written"), "{said}");
    (tmp, out)
}

fn golden(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("golden.json")).unwrap())
        .unwrap()
}

fn ids_arg(row: &Value) -> String {
    row.as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn imported_checkpoints_fill_masks_and_predict_lengths_as_the_authors_code() {
    for (name, dict) in [
        ("tied-bin", false),
        ("untied-zero", false),
        ("pruned-bin", true),
    ] {
        let (_tmp, model) = import(name, dict);
        let g = golden(name);
        // fill-mask: one mask per row of the golden batch.
        for (row, want) in g["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .zip(g["fill_mask"].as_array().unwrap())
        {
            let got: Value = serde_json::from_str(&ok(&dlm(&[
                "fill-mask",
                "--model",
                &model,
                "--json",
                "--ids",
                &ids_arg(row),
            ])))
            .unwrap();
            let got = &got["predictions"][0];
            for (a, b) in got.as_array().unwrap().iter().zip(want.as_array().unwrap()) {
                assert_eq!(a["token_id"], b["token_id"], "{name}");
                let d = (a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs();
                assert!(d < 1e-4, "{name}: probability differs by {d}");
            }
        }
        // generate: the length beam tries the authors' top-3 lengths, in order.
        for (prompt, lengths) in g["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .zip(g["length_candidates"].as_array().unwrap())
        {
            let prompt = prompt.as_str().unwrap();
            let out = ok(&dlm(&[
                "generate",
                "--model",
                &model,
                "--prompt",
                prompt,
                "--length-beam",
                "3",
                "--steps",
                "2",
                "--json",
            ]));
            let got: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(&got["length_candidates"], lengths, "{name}: {prompt:?}");
            assert_eq!(got["length_mean_logprobs"].as_array().unwrap().len(), 3);
            let n = got["generated_ids"].as_array().unwrap().len() as u64;
            assert!(
                lengths
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l.as_u64() == Some(n)),
                "{name}: generated {n} tokens"
            );
        }
    }
}

#[test]
fn import_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m").to_string_lossy().into_owned();
    let base = root()
        .join("crates/dlm-models/tests/fixtures/tiny-xlmr")
        .to_string_lossy()
        .into_owned();
    let empty = tmp.path().to_string_lossy().into_owned();
    let e = dlm(&[
        "import",
        "diffusionllm",
        "--checkpoint",
        &empty,
        "--base",
        &base,
        "--out",
        &out,
    ]);
    assert!(!e.status.success());
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(msg.contains("global_step") && msg.contains(&empty), "{msg}");
}
