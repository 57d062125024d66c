//! `dlm eval` end to end on tiny models: every task and input format over a few examples
//! (reading `../shared/data` in place; skipped with a message when it is absent, failing
//! under CI), the report's structure, skip counting, scoring a predictions file, and bad
//! inputs.

#[path = "../../dlm-eval/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn dlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlm"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "dlm failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails_with(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

/// The 514-position tiny XLM-R with a length predictor, built in `tmp` (milliseconds).
fn long_model(tmp: &Path) -> PathBuf {
    common::fixture::long_tiny_xlmr(&tmp.join("model"), true)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Runs one evaluation with `--out` (and `--limit 3` unless `extra` has a limit) and
/// returns the report.
fn eval_report(task: &str, data: &Path, extra: &[&str], model: &Path, out_dir: &Path) -> Value {
    let name = format!("{task}-{}", out_dir.read_dir().unwrap().count());
    let out = out_dir.join(format!("{name}.json"));
    let model = s(model);
    let (data, out_s) = (s(data), s(&out));
    let mut args = vec![
        "eval", "--model", &model, "--task", task, "--data", &data, "--out", &out_s,
    ];
    if !extra.contains(&"--limit") {
        args.extend_from_slice(&["--limit", "3"]);
    }
    args.extend_from_slice(extra);
    let stdout = ok(&dlm(&args));
    assert!(stdout.contains("| subset |"), "{stdout}");
    assert!(out.with_extension("md").is_file());
    assert!(out.with_extension("predictions.jsonl").is_file());
    let r = read_json(&out);
    assert_eq!(r["task"], task);
    let subsets = r["subsets"].as_array().unwrap();
    assert!(!subsets.is_empty());
    for sub in subsets {
        let (e, k, sc) = (
            sub["examples"].as_u64().unwrap(),
            sub["skipped"].as_u64().unwrap(),
            sub["scored"].as_u64().unwrap(),
        );
        assert!(e <= 3 && e == k + sc, "{task}: {sub}");
        if let Some(l) = r["settings"]["limit"].as_u64() {
            assert!(e <= l);
        }
    }
    assert!(r["scored"].as_u64().unwrap() > 0, "{task}: nothing scored");
    let score = r["score"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&score), "{task}: {score}");
    r
}

#[test]
fn every_task_and_format_end_to_end() {
    let Some(d) = common::data_root() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let model = long_model(tmp.path());
    // Gigaword has no copy in ../shared/data: three made-up lines, as parallel text and
    // as prompted JSONL.
    let giga = tmp.path().join("giga");
    std::fs::write(giga.with_extension("src"), "the man went to the city on monday .\nthe government said it would act .\nthere was rain in the north .\n").unwrap();
    std::fs::write(
        giga.with_extension("tgt"),
        "man goes to city\ngovernment will act\nrain in north\n",
    )
    .unwrap();
    let giga_jsonl = tmp.path().join("giga.jsonl");
    std::fs::write(&giga_jsonl, "{\"inputs\": \"Summarize the article.  Article: the man went to the city . Summary: \", \"targets\": \"man goes to city\"}\n").unwrap();

    let cases: Vec<(&str, PathBuf, Vec<&str>, &str, u64)> = vec![
        // (task, data, args, format, steps)
        (
            "iwslt14-deen",
            d.join("eval/iwslt14"),
            vec!["--oracle-length", "--steps", "3"],
            "prompted",
            3,
        ),
        (
            "iwslt14-ende",
            d.join("mt/iwslt14/valid"),
            vec!["--shots", "1", "--length-beam", "2", "--steps", "2"],
            "parallel",
            2,
        ),
        (
            "wmt14-ende",
            d.join("mt/iwslt14/valid"),
            vec!["--prompt", "plain", "--oracle-length", "--steps", "2"],
            "parallel",
            2,
        ),
        (
            "gigaword",
            giga.clone(),
            vec!["--oracle-length", "--steps", "2"],
            "parallel",
            2,
        ),
        (
            "gigaword",
            giga_jsonl.clone(),
            vec!["--steps", "2"],
            "prompted",
            2,
        ),
        // Many subsets (57 MMLU subjects, 27 BBH tasks, …): fewer examples each, and the
        // oracle length (an untrained length predictor proposes long canvases).
        (
            "mmlu",
            d.join("eval/mmlu"),
            vec!["--limit", "1", "--oracle-length"],
            "prompted",
            1,
        ),
        (
            "mmlu",
            d.join("mmlu/dev"),
            vec!["--shots", "2", "--limit", "1", "--oracle-length"],
            "mmlu_csv",
            1,
        ),
        (
            "bbh-nlp",
            d.join("eval/bbh-nlp"),
            vec!["--shots", "1", "--limit", "2", "--oracle-length"],
            "prompted",
            1,
        ),
        (
            "bbh",
            d.join("bbh/bbh"),
            vec!["--shots", "1", "--limit", "2", "--oracle-length"],
            "bbh_json",
            1,
        ),
        (
            "tydiqa",
            d.join("eval/tydiqa"),
            vec!["--limit", "2", "--oracle-length", "--steps", "2"],
            "prompted",
            2,
        ),
        (
            "gsm8k",
            d.join("gsm8k/train.jsonl"),
            vec!["--shots", "1", "--oracle-length", "--steps", "2"],
            "gsm8k",
            2,
        ),
        (
            "mgsm",
            d.join("mgsm"),
            vec!["--oracle-length", "--steps", "2", "--batch-size", "16"],
            "mgsm",
            2,
        ),
        (
            "mgsm",
            d.join("eval/mgsm"),
            vec!["--shots", "1", "--oracle-length", "--steps", "2"],
            "prompted",
            2,
        ),
    ];
    for (task, data, args, format, steps) in cases {
        let r = eval_report(task, &data, &args, &model, &out);
        assert_eq!(r["settings"]["format"], format, "{task} {}", data.display());
        assert_eq!(
            r["settings"]["generation"]["sampler"]["steps"], steps,
            "{task}"
        );
    }
    // Defaults with a length predictor in the model directory: the task's beam (TyDiQA 3)
    // and steps (TyDiQA 10).
    let r = eval_report(
        "tydiqa",
        &d.join("eval/tydiqa/0-shot/validation/english.jsonl"),
        &[],
        &model,
        &out,
    );
    assert_eq!(
        r["settings"]["generation"]["length"],
        serde_json::json!({"mode": "predicted", "beam": 3})
    );
    assert_eq!(r["settings"]["generation"]["sampler"]["steps"], 10);
    assert!(r["extra"]["f1"].is_number());
}

#[test]
fn report_structure() {
    let Some(d) = common::data_root() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let model = long_model(tmp.path());
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let r = eval_report(
        "iwslt14-deen",
        &d.join("eval/iwslt14/0-shot"),
        &["--oracle-length", "--steps", "2", "--batch-size", "2"],
        &model,
        &out,
    );
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "task",
        "metric",
        "aggregate",
        "score",
        "examples",
        "skipped",
        "scored",
        "subsets",
        "settings",
        "timing",
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    assert_eq!(r["metric"], "bleu");
    assert_eq!(r["aggregate"], "corpus");
    assert_eq!(
        (
            r["examples"].as_u64(),
            r["skipped"].as_u64(),
            r["scored"].as_u64()
        ),
        (Some(3), Some(0), Some(3))
    );
    let sub = &r["subsets"][0];
    assert_eq!(sub["name"], "deen");
    assert!(sub["source"].as_str().unwrap().ends_with("deen.jsonl"));
    let st = &r["settings"];
    assert_eq!(st["mode"], "generate");
    assert_eq!(st["shots"], 0);
    assert_eq!(st["limit"], 3);
    assert_eq!(st["max_length"], 512);
    assert_eq!(st["dtype"], "f32");
    assert_eq!(st["generation"]["length"]["mode"], "oracle");
    assert_eq!(st["generation"]["batch_size"], 2);
    assert_eq!(
        st["generation"]["sampler"]["strategy"]["reparam"]["update"],
        "uncond"
    );
    assert_eq!(
        st["generation"]["sampler"]["strategy"]["reparam"]["schedule"],
        "cosine"
    );
    assert!(st["model"].as_str().unwrap().ends_with("model"));
    let sig = st["bleu_signature"].as_str().unwrap();
    assert!(
        sig.starts_with("nrefs:1|case:lc|eff:no|tok:13a|smooth:exp|version:"),
        "{sig}"
    );
    let t = &r["timing"];
    assert!(t["total_seconds"].as_f64().unwrap() >= t["generation_seconds"].as_f64().unwrap());
    assert!(t["examples_per_second"].as_f64().unwrap() > 0.0);
    // The predictions file: one line per scored example with subset, index, prediction, target.
    let preds = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| s(p).ends_with(".predictions.jsonl"))
        .unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(preds)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["subset"], "deen");
    assert!(lines[0]["prediction"].is_string() && lines[0]["target"].is_string());
}

#[test]
fn over_long_examples_are_skipped_and_counted() {
    // The committed tiny XLM-R allows 32 tokens: most MMLU prompts are longer.
    let Some(d) = common::data_root() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r.json");
    let model = s(&common::tiny_xlmr());
    ok(&dlm(&[
        "eval",
        "--model",
        &model,
        "--task",
        "mmlu",
        "--data",
        &s(&d.join("eval/mmlu")),
        "--limit",
        "2",
        "--out",
        &s(&out),
    ]));
    let r = read_json(&out);
    assert_eq!(r["settings"]["max_length"], 32);
    assert_eq!(r["examples"], 57 * 2);
    assert!(r["skipped"].as_u64().unwrap() > 100, "{}", r["skipped"]);
    let sum: u64 = r["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["skipped"].as_u64().unwrap())
        .sum();
    assert_eq!(Some(sum), r["skipped"].as_u64());
}

#[test]
fn predictions_file_of_references_scores_perfectly() {
    let Some(d) = common::data_root() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let model = s(&long_model(tmp.path()));
    for (task, data, shots) in [
        ("iwslt14-deen", d.join("mt/iwslt14/valid"), "0"),
        ("mmlu", d.join("mmlu/dev"), "1"),
        ("tydiqa", d.join("eval/tydiqa"), "1"),
        ("gsm8k", d.join("gsm8k/train.jsonl"), "0"),
        ("bbh", d.join("bbh/bbh"), "0"),
    ] {
        let run = tmp.path().join(format!("{task}.json"));
        let common = [
            "--model",
            &model,
            "--task",
            task,
            "--data",
            &s(&data),
            "--shots",
            shots,
            "--limit",
            "4",
        ];
        let mut args = vec!["eval", "--oracle-length", "--steps", "1", "--out"];
        let run_s = s(&run);
        args.push(&run_s);
        args.extend_from_slice(&common);
        ok(&dlm(&args));
        // The run's predictions file, with each prediction replaced by its target.
        let text = std::fs::read_to_string(run.with_extension("predictions.jsonl")).unwrap();
        let refs: Vec<String> = text
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v["prediction"] = v["target"].clone();
                v.to_string()
            })
            .collect();
        let given = tmp.path().join(format!("{task}.refs.jsonl"));
        std::fs::write(&given, refs.join("\n")).unwrap();
        let scored = tmp.path().join(format!("{task}.scored.json"));
        let (given_s, scored_s) = (s(&given), s(&scored));
        let mut args = vec!["eval", "--predictions", &given_s, "--out", &scored_s];
        args.extend_from_slice(&common);
        ok(&dlm(&args));
        let r = read_json(&scored);
        assert_eq!(r["settings"]["mode"], "predictions");
        assert!(
            (r["score"].as_f64().unwrap() - 100.0).abs() < 1e-9,
            "{task}: {}",
            r["score"]
        );
        assert!(!scored.with_extension("predictions.jsonl").exists());
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = s(&common::tiny_xlmr());
    let eval = |task: &str, data: &Path, extra: &[&str]| {
        let data = s(data);
        let mut args = vec!["eval", "--model", &model, "--task", task, "--data", &data];
        args.extend_from_slice(extra);
        dlm(&args)
    };
    // Malformed JSONL: the file and line are named.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"inputs\": \"a\", \"targets\": \"b\"}\n{\"inputs\": \"a\",\n",
    )
    .unwrap();
    fails_with(
        &eval("tydiqa", &bad, &[]),
        &[&format!("{}:2: malformed JSON", bad.display())],
    );
    // A missing field.
    let missing = tmp.path().join("missing.jsonl");
    std::fs::write(
        &missing,
        "{\"inputs\": \"a\", \"targets\": \"b\"}\n\n{\"inputs\": \"a\"}\n",
    )
    .unwrap();
    fails_with(
        &eval("tydiqa", &missing, &[]),
        &[&format!(
            "{}:3: missing field \"targets\"",
            missing.display()
        )],
    );
    // GSM8K rows need question and answer with "#### n".
    let gsm = tmp.path().join("gsm.jsonl");
    std::fs::write(&gsm, "{\"question\": \"q\", \"answer\": \"no number\"}\n").unwrap();
    fails_with(&eval("gsm8k", &gsm, &[]), &["gsm.jsonl:1:", "####"]);
    // Unknown task.
    fails_with(
        &eval("squad", &bad, &[]),
        &["unknown task 'squad'", "iwslt14-deen"],
    );
    // Parallel text whose files differ in length.
    let pre = tmp.path().join("valid");
    std::fs::write(pre.with_extension("de"), "a\nb\nc\n").unwrap();
    std::fs::write(pre.with_extension("en"), "a\nb\n").unwrap();
    fails_with(
        &eval("iwslt14-deen", &pre, &[]),
        &["valid.de has 3 lines", "valid.en has 2"],
    );
    // Missing data path, and half of a parallel pair.
    let nowhere = tmp.path().join("nowhere");
    fails_with(
        &eval("mmlu", &nowhere, &[]),
        &[&format!("{}: no such file or directory", nowhere.display())],
    );
    let half = tmp.path().join("half");
    std::fs::write(half.with_extension("de"), "a\n").unwrap();
    fails_with(
        &eval("iwslt14-deen", &half, &[]),
        &["half.en: no such file or directory"],
    );
    // MMLU CSV with a short row.
    let csv = tmp.path().join("x_dev.csv");
    std::fs::write(
        &csv,
        "question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,1\nq,a,b\n",
    )
    .unwrap();
    fails_with(
        &eval("mmlu", &csv, &[]),
        &["x_dev.csv:3: expected 6 fields"],
    );
    // A data format that does not fit the task.
    fails_with(
        &eval("bbh", &csv, &[]),
        &["MMLU CSV data cannot be evaluated as task bbh"],
    );
    // A predictions file that lacks an example.
    let good = tmp.path().join("good.jsonl");
    std::fs::write(
        &good,
        "{\"inputs\": \"a b\", \"targets\": \"c\"}\n{\"inputs\": \"a\", \"targets\": \"d\"}\n",
    )
    .unwrap();
    let preds = tmp.path().join("p.jsonl");
    std::fs::write(
        &preds,
        "{\"subset\": \"good\", \"index\": 0, \"prediction\": \"c\"}\n",
    )
    .unwrap();
    fails_with(
        &eval("tydiqa", &good, &["--predictions", &s(&preds)]),
        &["no prediction for subset \"good\" index 1"],
    );
    std::fs::write(&preds, "not json\n").unwrap();
    fails_with(
        &eval("tydiqa", &good, &["--predictions", &s(&preds)]),
        &["p.jsonl:1:"],
    );
    // A length beam without a length predictor.
    fails_with(
        &eval("tydiqa", &good, &["--length-beam", "3"]),
        &["length_predictor.safetensors"],
    );
}

#[test]
fn cache_refresh_is_an_eval_option() {
    // `--cache refresh:1` is the uncached run (the same predictions); refresh:2 runs and
    // scores.
    let tmp = tempfile::tempdir().unwrap();
    let model = long_model(tmp.path());
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/demo/iwslt14-deen.jsonl");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let predictions = |cache: &str| {
        let extra = ["--oracle-length", "--steps", "4", "--batch-size", "2", "--cache", cache];
        let r = eval_report("iwslt14-deen", &data, &extra, &model, &out);
        let n = out.read_dir().unwrap().count();
        let path = out.read_dir().unwrap().map(|e| e.unwrap().path()).filter(|p| s(p).ends_with(".predictions.jsonl")).max();
        assert!(n > 0 && r["scored"].as_u64().unwrap() > 0);
        std::fs::read_to_string(path.unwrap()).unwrap()
    };
    let none = predictions("none");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    assert_eq!(predictions("refresh:1"), none);
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    predictions("refresh:2");
}

/// A word-level tokenizer for the tiny LLaDA fixture (no tokenizer of its own; 128 ids):
/// tiny-xlmr's 89 words and specials, `w89` … `w127` for the other ids, and `<mask>` at
/// 126, the fixture's `mask_token_id`. Written into `dir`, which is returned.
fn llada_tokenizer(dir: &Path) -> PathBuf {
    let src = common::tiny_xlmr();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(
        src.join("tokenizer_config.json"),
        dir.join("tokenizer_config.json"),
    )
    .unwrap();
    let mut t = read_json(&src.join("tokenizer.json"));
    let vocab = t["model"]["vocab"].as_object_mut().unwrap();
    assert_eq!(vocab.remove("<mask>"), Some(89.into()));
    for id in (89..128).filter(|&id| id != 126) {
        vocab.insert(format!("w{id}"), id.into());
    }
    vocab.insert("<mask>".into(), 126.into());
    for added in t["added_tokens"].as_array_mut().unwrap() {
        if added["content"] == "<mask>" {
            added["id"] = 126.into();
        }
    }
    std::fs::write(dir.join("tokenizer.json"), t.to_string()).unwrap();
    dir.to_path_buf()
}

#[test]
fn eval_takes_the_samplers_of_generate() {
    // `dlm eval` on the tiny LLaDA fixture with generate's sampler options: the report
    // records the sampler they build, and each choice changes the predictions (with these
    // weights, the dual cache's approximation moves some tokens, and llada's blocks
    // differ from reparam-uncond), so a flag that did not reach the sampler would fail.
    let tmp = tempfile::tempdir().unwrap();
    let tokenizer = s(&llada_tokenizer(&tmp.path().join("tokenizer")));
    let model = s(&common::repo_root().join("crates/dlm-models/tests/fixtures/llada-tiny"));
    // Targets of 8 words: 2 blocks of 4, so 8 steps are a multiple of every example's
    // number of blocks.
    let data = tmp.path().join("deen.jsonl");
    let rows = [
        ("es ist so.", "it is so and the people know that"),
        ("wir sind hier.", "we are here with you and them now"),
        ("was ist das.", "what is this thing that you have there"),
    ];
    let lines: Vec<String> = rows
        .iter()
        .map(|(de, en)| {
            serde_json::json!({
                "inputs": format!("Translate the sentences into English.  German: {de} English: "),
                "targets": en,
            })
            .to_string()
        })
        .collect();
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    let data = s(&data);
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let base = [
        "eval",
        "--model",
        &model,
        "--tokenizer",
        &tokenizer,
        "--task",
        "iwslt14-deen",
        "--data",
        &data,
        "--oracle-length",
        "--steps",
        "8",
        "--batch-size",
        "2",
    ];
    let run = |sampler: &[&str]| {
        let report = out.join(format!("{}.json", sampler.join("_")));
        let report_s = s(&report);
        ok(&dlm(&[&base[..], sampler, &["--out", &report_s]].concat()));
        let preds = std::fs::read_to_string(report.with_extension("predictions.jsonl")).unwrap();
        (read_json(&report), preds)
    };
    let llada = ["--strategy", "llada", "--block-length", "4"];
    let (report, dual) = run(&[&llada[..], &["--cache", "dual"]].concat());
    assert_eq!(report["scored"], 3, "{report}");
    let sampler = &report["settings"]["generation"]["sampler"];
    assert_eq!(
        sampler["strategy"],
        serde_json::json!({"low_confidence": {"block_length": 4, "remasking": "low_confidence"}})
    );
    assert_eq!(sampler["cache"], "dual");
    assert_eq!(sampler["steps"], 8);
    // The Markdown summary names the sampler too.
    let summary = |sampler: &[&str]| std::fs::read_to_string(out.join(format!("{}.md", sampler.join("_")))).unwrap();
    let md = summary(&[&llada[..], &["--cache", "dual"]].concat());
    assert!(md.contains("strategy llada, 8 steps, cache dual"), "{md}");
    let (_, none) = run(&[&llada[..], &["--cache", "none"]].concat());
    let md = summary(&[&llada[..], &["--cache", "none"]].concat());
    assert!(md.contains("strategy llada, 8 steps") && !md.contains("steps, cache"), "{md}");
    assert_ne!(dual, none, "--cache dual gave the uncached predictions");
    let (_, reparam) = run(&["--strategy", "reparam-uncond"]);
    assert_ne!(none, reparam, "--strategy llada gave reparam-uncond's predictions");
    // fast-dllm with its threshold and the prefix cache.
    let (report, _) = run(&[
        "--strategy",
        "fast-dllm",
        "--block-length",
        "4",
        "--threshold",
        "0.5",
        "--cache",
        "prefix",
    ]);
    let sampler = &report["settings"]["generation"]["sampler"];
    assert_eq!(
        sampler["strategy"]["confidence_threshold"],
        serde_json::json!({"rule": {"threshold": 0.5}, "block_length": 4})
    );
    assert_eq!(sampler["cache"], "prefix");
    // The options generate refuses, eval refuses with the same words.
    fails_with(
        &dlm(&[&base[..], &["--strategy", "reparam-uncond", "--cache", "dual"]].concat()),
        &["--cache dual applies only to --strategy llada and fast-dllm, not reparam-uncond"],
    );
    fails_with(
        &dlm(&[&base[..], &["--strategy", "llada", "--threshold", "0.5"]].concat()),
        &["--threshold applies only to --strategy fast-dllm, not llada"],
    );
}
