//! Tokenizers where people keep them: `--tokenizer PATH` (a file or a folder) for a model
//! folder without one — AntiBERTy exactly as its wheel ships it, `vocab.txt` one folder
//! up — and commands given token ids, which need no tokenizer at all.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlm"))
        .args(args)
        .output()
        .unwrap()
}

fn json_out(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stderr(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// AntiBERTy's model folder inside its unpacked wheel (scripts/fetch-models.sh).
fn antiberty_wheel() -> Option<PathBuf> {
    let dir =
        root().join(".cache/models/wheels/antiberty/antiberty/trained_models/AntiBERTy_md_smooth");
    if dir.join("pytorch_model.bin").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} missing in CI: run bash scripts/fetch-models.sh",
        dir.display()
    );
    eprintln!(
        "skipping: {} not fetched (run bash scripts/fetch-models.sh)",
        dir.display()
    );
    None
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The transformers fill-mask rows of AntiBERTy (fixture of dlm-models).
fn antiberty_golden() -> Vec<Value> {
    let path = root().join("crates/dlm-models/tests/fixtures/real/antiberty.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assert_same_predictions(got: &Value, want: &Value, with_tokens: bool) {
    for (gp, wp) in got.as_array().unwrap().iter().zip(want.as_array().unwrap()) {
        for (a, b) in gp.as_array().unwrap().iter().zip(wp.as_array().unwrap()) {
            assert_eq!(a["token_id"], b["token_id"]);
            if with_tokens {
                assert_eq!(a["token"], b["token"]);
            } else {
                assert!(a.get("token").is_none(), "{a}");
            }
            let d = (a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs();
            assert!(d < 1e-4, "score differs by {d}");
        }
    }
}

#[test]
fn antiberty_as_its_wheel_ships_it_loads_with_tokenizer() {
    let Some(model) = antiberty_wheel() else {
        return;
    };
    let up = model.parent().unwrap();
    let rows = antiberty_golden();
    let text = rows[0]["text"].as_str().unwrap();
    // Without a tokenizer: the error says both remedies.
    let e = stderr(&dlm(&["fill-mask", "--model", &s(&model), text]));
    assert!(
        e.contains("no tokenizer in")
            && e.contains("--tokenizer PATH")
            && e.contains("put the tokenizer"),
        "{e}"
    );
    // The folder one up, or the file itself.
    for tokenizer in [up.to_path_buf(), up.join("vocab.txt")] {
        for row in &rows {
            let text = row["text"].as_str().unwrap();
            let got = json_out(&dlm(&[
                "fill-mask",
                "--model",
                &s(&model),
                "--tokenizer",
                &s(&tokenizer),
                "--json",
                text,
            ]));
            assert_eq!(got["input_ids"], row["input_ids"], "{text}");
            assert_same_predictions(&got["predictions"], &row["predictions"], true);
        }
    }
    let info = json_out(&dlm(&[
        "inspect",
        &s(&model),
        "--tokenizer",
        &s(up),
        "--json",
    ]));
    assert_eq!(info["vocab_size"], 25, "{info}");
    let generated = json_out(&dlm(&[
        "generate",
        "--model",
        &s(&model),
        "--tokenizer",
        &s(up),
        "--prompt",
        "E V Q",
        "--length",
        "4",
        "--json",
    ]));
    assert_eq!(
        generated["generated_ids"].as_array().unwrap().len(),
        4,
        "{generated}"
    );
}

#[test]
fn fill_mask_ids_need_no_tokenizer() {
    let Some(model) = antiberty_wheel() else {
        return;
    };
    for row in antiberty_golden() {
        let ids = row["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let got = json_out(&dlm(&[
            "fill-mask",
            "--model",
            &s(&model),
            "--ids",
            &ids,
            "--mask-id",
            "4",
            "--json",
        ]));
        assert_same_predictions(&got["predictions"], &row["predictions"], false);
        // Without --mask-id nothing names the mask: the error says how to.
        let e = stderr(&dlm(&["fill-mask", "--model", &s(&model), "--ids", &ids]));
        assert!(e.contains("--mask-id") && e.contains("--tokenizer"), "{e}");
    }
}

#[test]
fn generate_from_prompt_ids_needs_no_tokenizer() {
    // The tiny XLM-R without its tokenizer files generates what it generates with them.
    let full = root().join("crates/dlm-models/tests/fixtures/tiny-xlmr");
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(full.join(f), tmp.path().join(f)).unwrap();
    }
    let args = |dir: &Path| {
        [
            "generate",
            "--model",
            &s(dir),
            "--prompt-ids",
            "0,6,7,8,2",
            "--length",
            "5",
            "--steps",
            "3",
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |mut a: Vec<String>, extra: &[&str]| {
        a.extend(extra.iter().map(|x| x.to_string()));
        dlm(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let with = json_out(&run(args(&full), &[]));
    let without = json_out(&run(args(tmp.path()), &["--mask-id", "89"]));
    assert_eq!(with["generated_ids"], without["generated_ids"]);
    assert_eq!(with["ids"].as_array().unwrap()[..4], [0, 6, 7, 8]);
    assert!(
        with["text"].is_string() && without.get("text").is_none(),
        "{without}"
    );
    let e = stderr(&run(args(tmp.path()), &[]));
    assert!(e.contains("--mask-id") && e.contains("--tokenizer"), "{e}");
}
