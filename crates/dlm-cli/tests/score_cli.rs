//! `dlm score` end to end: the built binary on files written from the dlm-metrics golden
//! fixtures must print the sacreBLEU / rouge-score values, and bad inputs must fail with
//! a clear message.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dlm-metrics/tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("json")
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dlm-score-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn write_lines(path: &Path, lines: &[String], eol: &str) {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push_str(eol);
    }
    std::fs::write(path, s).expect("write");
}

fn dlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlm")).args(args).output().expect("run dlm")
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "dlm failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

/// (hypotheses, references) of the `iwslt_en` fixture corpus, first reference stream.
fn iwslt_en(n: usize) -> (Vec<String>, Vec<String>) {
    let c = fixture("corpora.json");
    let c = &c["corpora"]["iwslt_en"];
    let take = |v: &Value| v.as_array().unwrap().iter().take(n).map(|s| s.as_str().unwrap().to_string()).collect();
    (take(&c["hyps"]), take(&c["refs"][0]))
}

fn bleu_case(tok: &str, lowercase: bool, smooth: &str) -> Value {
    let fx = fixture("bleu.json");
    fx["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            let k = &c["config"];
            c["corpus"] == "iwslt_en"
                && c["nstreams"] == 1
                && k["tokenize"] == tok
                && k["lowercase"] == lowercase
                && k["smooth"] == smooth
                && k["effective_order"] == false
                && k["smooth_value"].is_null()
        })
        .cloned()
        .expect("fixture case")
}

#[test]
fn bleu_json_and_line_match_sacrebleu() {
    let d = scratch("bleu");
    let (hyps, refs) = iwslt_en(usize::MAX);
    let (h, r, h_crlf) = (d.join("hyp.txt"), d.join("ref.txt"), d.join("hyp_crlf.txt"));
    write_lines(&h, &hyps, "\n");
    write_lines(&h_crlf, &hyps, "\r\n");
    write_lines(&r, &refs, "\n");
    let (hs, rs, hc) = (h.to_str().unwrap(), r.to_str().unwrap(), h_crlf.to_str().unwrap());

    for (extra, tok, lc, smooth) in [
        (vec![], "13a", false, "exp"),
        (vec!["--tokenize", "intl", "--lowercase", "--smooth", "floor"], "intl", true, "floor"),
        (vec!["--tokenize", "char", "--smooth", "none"], "char", false, "none"),
    ] {
        let want = bleu_case(tok, lc, smooth);
        for hyp in [hs, hc] {
            let mut args = vec!["score", "bleu", "--ref", rs, "--hyp", hyp, "--json"];
            args.extend(&extra);
            let got = json_of(&dlm(&args));
            let (g, w) = (got["score"].as_f64().unwrap(), want["score"].as_f64().unwrap());
            assert!((g - w).abs() < 1e-9, "{args:?}: score {g} vs sacrebleu {w}");
            for k in ["counts", "totals", "sys_len", "ref_len", "signature"] {
                assert_eq!(got[k], want[k], "{args:?}: {k}");
            }
        }
        if let Some(line) = want["line"].as_str() {
            let mut args = vec!["score", "bleu", "--ref", rs, "--hyp", hs];
            args.extend(&extra);
            let out = dlm(&args);
            assert!(out.status.success());
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), line);
        }
    }
}

#[test]
fn chrf_and_rouge_match_references() {
    let d = scratch("chrf_rouge");
    let (hyps, refs) = iwslt_en(usize::MAX);
    let (h, r) = (d.join("hyp.txt"), d.join("ref.txt"));
    write_lines(&h, &hyps, "\n");
    write_lines(&r, &refs, "\n");
    let (hs, rs) = (h.to_str().unwrap(), r.to_str().unwrap());

    let fx = fixture("chrf.json");
    let want = fx["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["corpus"] == "iwslt_en" && c["nstreams"] == 1 && c["signature"].as_str().unwrap().contains("case:mixed|eff:yes|nc:6|nw:0|space:no"))
        .cloned()
        .unwrap();
    let got = json_of(&dlm(&["score", "chrf", "--ref", rs, "--hyp", hs, "--json"]));
    assert!((got["score"].as_f64().unwrap() - want["score"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(got["signature"], want["signature"]);

    // ROUGE fixtures use the first 150 segments.
    let (hyps, refs) = iwslt_en(150);
    write_lines(&h, &hyps, "\n");
    write_lines(&r, &refs, "\r\n");
    let fx = fixture("rouge.json");
    for stem in [true, false] {
        let want = fx["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["corpus"] == "iwslt_en" && c["use_stemmer"] == stem)
            .cloned()
            .unwrap();
        let mut args = vec!["score", "rouge", "--ref", rs, "--hyp", hs, "--json"];
        if !stem {
            args.push("--no-stemmer");
        }
        let got = json_of(&dlm(&args));
        for k in ["rouge1", "rouge2", "rougeL", "rougeLsum"] {
            let (g, w) = (got[k].as_f64().unwrap(), want["mean_f"][k].as_f64().unwrap());
            assert!((g - w).abs() < 1e-9, "stemmer={stem} {k}: {g} vs rouge-score {w}");
        }
    }

    // --py-rouge: the authors' ROUGE-L (py-rouge defaults) on the first 120 segments.
    let (hyps, refs) = iwslt_en(120);
    write_lines(&h, &hyps, "\n");
    write_lines(&r, &refs, "\n");
    let fx = fixture("py_rouge.json");
    let want = fx["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["corpus"] == "iwslt_en" && c["variant"] == "authors")
        .cloned()
        .unwrap();
    let got = json_of(&dlm(&["score", "rouge", "--py-rouge", "--ref", rs, "--hyp", hs, "--json"]));
    for (i, k) in ["p", "r", "f"].into_iter().enumerate() {
        let (g, w) = (got["rougeL"][k].as_f64().unwrap(), want["mean"][i].as_f64().unwrap());
        assert!((g - w).abs() < 1e-9, "py-rouge {k}: {g} vs {w}");
    }
    assert_eq!(got["config"]["length_limit"], 665);
}

#[test]
fn mismatched_line_counts_fail_clearly() {
    let d = scratch("mismatch");
    let (h, r) = (d.join("hyp.txt"), d.join("ref.txt"));
    std::fs::write(&r, "a\nb\nc\n").unwrap();
    std::fs::write(&h, "a\nb\n").unwrap();
    for metric in ["bleu", "chrf", "rouge"] {
        let out = dlm(&["score", metric, "--ref", r.to_str().unwrap(), "--hyp", h.to_str().unwrap()]);
        assert!(!out.status.success(), "{metric} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("line count mismatch"), "{err}");
        assert!(err.contains("ref.txt") && err.contains("hyp.txt"), "{err}");
        assert!(err.contains("has 3 lines") && err.contains("has 2 lines"), "{err}");
    }
}

#[test]
fn missing_file_is_named() {
    let d = scratch("missing");
    let r = d.join("ref.txt");
    std::fs::write(&r, "a\n").unwrap();
    let missing = d.join("no_such_hyp.txt");
    let out = dlm(&["score", "bleu", "--ref", r.to_str().unwrap(), "--hyp", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no_such_hyp.txt"), "{err}");
    // unknown option values are rejected by the argument parser
    let out = dlm(&["score", "bleu", "--ref", r.to_str().unwrap(), "--hyp", r.to_str().unwrap(), "--tokenize", "moses"]);
    assert!(!out.status.success());
}
