//! The references themselves, given as predictions, score perfectly on every task and
//! input format (BLEU 100, ROUGE-L 100, EM/F1 100, accuracy 100): the scoring path, the
//! loaders' targets and the prediction alignment agree. Reads `../shared/data` in place.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use dlm_data::Tokenizer;
use dlm_eval::{
    Dataset, Format, LoadOptions, Predictions, PromptStyle, RunInfo, Task, evaluate_predictions,
    load,
};

/// Scores the targets of the first `limit` examples per subset as predictions.
fn score_references(
    task: Task,
    path: &Path,
    shots: Option<usize>,
    limit: usize,
) -> (Dataset, dlm_eval::Report) {
    let tok = Tokenizer::from_dir(common::tiny_xlmr()).unwrap();
    let opts = LoadOptions {
        shots,
        style: PromptStyle::Instruct,
        tokenizer: Some(&tok),
    };
    let dataset =
        load(task, path, &opts).unwrap_or_else(|e| panic!("{task} {}: {e}", path.display()));
    let mut given = Predictions::default();
    for s in &dataset.subsets {
        for (i, e) in s.examples.iter().enumerate().take(limit) {
            given.insert(s.name.clone(), i, e.target.clone());
        }
    }
    let info = RunInfo {
        model: "tiny-xlmr".into(),
        data: path.display().to_string(),
        style: PromptStyle::Instruct,
        limit: Some(limit),
        dtype: None,
        started: Instant::now(),
    };
    let eval =
        evaluate_predictions(&dataset, &tok, None, 512, &given, Path::new("refs.jsonl"), &info).unwrap();
    (dataset, eval.report)
}

fn assert_perfect(task: Task, path: &Path, shots: Option<usize>, format: Format) {
    let (dataset, report) = score_references(task, path, shots, 8);
    assert_eq!(dataset.format, format, "{task} {}", path.display());
    assert!(
        report.scored > 0,
        "{task} {}: nothing scored",
        path.display()
    );
    let close = |x: Option<f64>| x.is_some_and(|v| (v - 100.0).abs() < 1e-9);
    assert!(
        close(report.score),
        "{task} {}: {:?}",
        path.display(),
        report.score
    );
    for s in &report.subsets {
        assert!(
            s.scored == 0 || close(s.score),
            "{task} {} / {}: {:?}",
            path.display(),
            s.name,
            s.score
        );
        assert_eq!(s.examples, s.skipped + s.scored);
    }
    for (k, v) in &report.extra {
        assert!((v - 100.0).abs() < 1e-9, "{task} {k} = {v}");
    }
}

fn data() -> Option<PathBuf> {
    common::data_root()
}

#[test]
fn translation_prompted_and_parallel() {
    let Some(d) = data() else { return };
    assert_perfect(
        Task::Iwslt14DeEn,
        &d.join("eval/iwslt14"),
        None,
        Format::Prompted,
    );
    assert_perfect(
        Task::Iwslt14EnDe,
        &d.join("eval/iwslt14"),
        Some(1),
        Format::Prompted,
    );
    assert_perfect(
        Task::Iwslt14DeEn,
        &d.join("mt/iwslt14/valid"),
        None,
        Format::Parallel,
    );
    assert_perfect(
        Task::Iwslt14EnDe,
        &d.join("mt/iwslt14/valid"),
        Some(1),
        Format::Parallel,
    );
    assert_perfect(
        Task::Wmt14EnDe,
        &d.join("mt/iwslt14/valid"),
        Some(2),
        Format::Parallel,
    );
    let (_, r) = score_references(Task::Iwslt14DeEn, &d.join("eval/iwslt14"), None, 4);
    let sig = r.settings.bleu_signature.unwrap();
    assert!(
        sig.starts_with("nrefs:1|case:lc|eff:no|tok:13a|smooth:exp|version:"),
        "{sig}"
    );
}

#[test]
fn summarization_prompted_and_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let src = "police arrested a man on monday after a robbery in the city centre .\n\
               the government announced new taxes on fuel and tobacco .\n\
               heavy rain caused floods across the north of the country .\n";
    let tgt = "man arrested after robbery\ngovernment announces new taxes\nfloods hit north\n";
    std::fs::write(dir.path().join("test.src"), src).unwrap();
    std::fs::write(dir.path().join("test.tgt"), tgt).unwrap();
    assert_perfect(
        Task::Gigaword,
        &dir.path().join("test"),
        None,
        Format::Parallel,
    );
    assert_perfect(
        Task::Gigaword,
        &dir.path().join("test"),
        Some(1),
        Format::Parallel,
    );
    let jsonl = dir.path().join("gigaword.jsonl");
    std::fs::write(
        &jsonl,
        "{\"inputs\": \"Summarize: police arrested a man. Summary: \", \"targets\": \"man arrested\"}\n",
    )
    .unwrap();
    assert_perfect(Task::Gigaword, &jsonl, None, Format::Prompted);
}

#[test]
fn multiple_choice_all_formats() {
    let Some(d) = data() else { return };
    assert_perfect(Task::Mmlu, &d.join("eval/mmlu"), None, Format::Prompted);
    assert_perfect(Task::Mmlu, &d.join("eval/mmlu"), Some(2), Format::Prompted);
    assert_perfect(Task::Mmlu, &d.join("mmlu/dev"), None, Format::MmluCsv);
    assert_perfect(Task::Mmlu, &d.join("mmlu/dev"), Some(3), Format::MmluCsv);
    assert_perfect(
        Task::BbhNlp,
        &d.join("eval/bbh-nlp"),
        Some(1),
        Format::Prompted,
    );
    assert_perfect(Task::Bbh, &d.join("bbh/bbh"), None, Format::BbhJson);
    assert_perfect(Task::Bbh, &d.join("bbh/bbh"), Some(3), Format::BbhJson);
    // Directory of MMLU prompted files: the 57 subjects, not full.jsonl as well.
    let (ds, _) = score_references(Task::Mmlu, &d.join("eval/mmlu"), None, 1);
    assert_eq!(ds.subsets.len(), 57);
    assert!(ds.subsets.iter().all(|s| s.name != "full"));
}

#[test]
fn qa_and_math_all_formats() {
    let Some(d) = data() else { return };
    assert_perfect(Task::TydiQa, &d.join("eval/tydiqa"), None, Format::Prompted);
    assert_perfect(
        Task::TydiQa,
        &d.join("eval/tydiqa"),
        Some(1),
        Format::Prompted,
    );
    assert_perfect(Task::Mgsm, &d.join("eval/mgsm"), Some(8), Format::Prompted);
    assert_perfect(Task::Mgsm, &d.join("mgsm"), None, Format::Mgsm);
    assert_perfect(
        Task::Mgsm,
        &d.join("mgsm/mgsm_fr.tsv"),
        Some(3),
        Format::Mgsm,
    );
    assert_perfect(
        Task::Gsm8k,
        &d.join("gsm8k/train.jsonl"),
        None,
        Format::Gsm8k,
    );
    assert_perfect(Task::Gsm8k, &d.join("gsm8k"), Some(2), Format::Gsm8k);
}

#[test]
fn wrong_predictions_score_below_perfect() {
    // The same path with every prediction wrong: not 100 (guards against a scorer that
    // ignores its input).
    let Some(d) = data() else { return };
    let tok = Tokenizer::from_dir(common::tiny_xlmr()).unwrap();
    let opts = LoadOptions {
        tokenizer: Some(&tok),
        ..LoadOptions::default()
    };
    for (task, path) in [
        (Task::Mmlu, d.join("mmlu/dev/anatomy_dev.csv")),
        (Task::Iwslt14DeEn, d.join("eval/iwslt14")),
        (Task::Gsm8k, d.join("gsm8k/train.jsonl")),
        (
            Task::TydiQa,
            d.join("eval/tydiqa/0-shot/validation/english.jsonl"),
        ),
    ] {
        let ds = load(task, &path, &opts).unwrap();
        let mut given = Predictions::default();
        for s in &ds.subsets {
            for i in 0..5 {
                given.insert(s.name.clone(), i, "zzz");
            }
        }
        let info = RunInfo {
            model: "m".into(),
            data: "d".into(),
            style: PromptStyle::Instruct,
            limit: Some(5),
            dtype: None,
            started: Instant::now(),
        };
        let r = evaluate_predictions(&ds, &tok, None, 512, &given, Path::new("p"), &info)
            .unwrap()
            .report;
        assert!(r.score.unwrap() < 1.0, "{task}: {:?}", r.score);
    }
}
