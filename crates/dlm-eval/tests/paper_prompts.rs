//! Prompts built from raw data equal the paper's own files where the paper has them: raw
//! MGSM (`mgsm_<lang>.tsv` + `mgsm_exemplars.json`) gives, character for character, the
//! prompts of `eval/mgsm/<k>-shot/<lang>.jsonl`, and — with the real XLM-R tokenizer,
//! when `.cache/models/xlmr-tokenizer` has been fetched — the same `#`-padded targets.

mod common;

use dlm_data::{Tokenizer, read_prompt_jsonl};
use dlm_eval::{LoadOptions, Task, load};

#[test]
fn raw_mgsm_prompts_equal_the_papers() {
    let Some(d) = common::data_root() else { return };
    let xlmr = common::repo_root().join(".cache/models/xlmr-tokenizer");
    let tok = xlmr.is_dir().then(|| Tokenizer::from_dir(&xlmr).unwrap());
    if tok.is_none() {
        eprintln!(
            "few-shot MGSM targets not compared: {} is absent",
            xlmr.display()
        );
    }
    for lang in ["en", "zh"] {
        for k in [0, 1, 3, 8] {
            let paper =
                read_prompt_jsonl(d.join(format!("eval/mgsm/{k}-shot/{lang}.jsonl"))).unwrap();
            if k > 0 && tok.is_none() {
                continue; // few-shot target lengths are counted in XLM-R tokens
            }
            let opts = LoadOptions {
                shots: Some(k),
                tokenizer: tok.as_ref(),
                ..LoadOptions::default()
            };
            let ours = load(Task::Mgsm, &d.join(format!("mgsm/mgsm_{lang}.tsv")), &opts)
                .unwrap_or_else(|e| panic!("{lang} {k}-shot: {e}"));
            let ours = &ours.subsets[0].examples;
            assert_eq!(ours.len(), paper.len());
            for (i, (o, p)) in ours.iter().zip(&paper).enumerate() {
                assert_eq!(o.prompt, p.inputs, "{lang} {k}-shot row {i}");
                if k == 0 || tok.is_some() {
                    assert_eq!(o.target, p.targets, "{lang} {k}-shot row {i}");
                }
            }
        }
    }
}

/// The paper's 0-shot TyDiQA rows that `tests/fixtures/tydiqa-goldp-mini.json` (official
/// GoldP layout, written by `scripts/reference/tydiqa_fixture.py`) holds in raw form:
/// `(language, row in the paper's file, prompt, target)`.
fn tydiqa_expected() -> Vec<(String, usize, String, String)> {
    let path = common::repo_root().join("crates/dlm-eval/tests/fixtures/tydiqa-goldp-mini.expected.jsonl");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("language"), v["paper_row"].as_u64().unwrap() as usize, s("inputs"), s("targets"))
        })
        .collect()
}

#[test]
fn raw_tydiqa_prompts_equal_the_papers() {
    let raw = common::repo_root().join("crates/dlm-eval/tests/fixtures/tydiqa-goldp-mini.json");
    let ds = load(Task::TydiQa, &raw, &LoadOptions::default()).unwrap();
    assert_eq!(ds.format, dlm_eval::Format::TydiQaJson);
    let expected = tydiqa_expected();
    // one subset per language, sorted by name; questions in file order
    let names: Vec<&str> = ds.subsets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["arabic", "english", "finnish", "japanese"]);
    for subset in &ds.subsets {
        let want: Vec<_> = expected.iter().filter(|e| e.0 == subset.name).collect();
        assert_eq!(subset.examples.len(), want.len(), "{}", subset.name);
        for (o, (lang, row, prompt, target)) in subset.examples.iter().zip(want) {
            assert_eq!(&o.prompt, prompt, "{lang} row {row}");
            assert_eq!(&o.target, target, "{lang} row {row}");
        }
    }
    // the fixture's rows are the paper's (checked against its files when present)
    if let Some(d) = common::data_root() {
        for (lang, row, prompt, target) in &expected {
            let paper = read_prompt_jsonl(d.join(format!("eval/tydiqa/0-shot/validation/{lang}.jsonl"))).unwrap();
            assert_eq!((&paper[*row].inputs, &paper[*row].targets), (prompt, target), "{lang} row {row}");
        }
        // 1-shot layout: each fixture row's 1-shot prompt in the paper's files (a training
        // demonstration, then the same question as the 0-shot row) is the 0-shot prompt
        // with the demonstration spliced in, and `templates::tydiqa` rebuilds it from parts
        let mut checked = 0;
        for (lang, row, zero, target) in &expected {
            let file = d.join(format!("eval/tydiqa/1-shot/validation/{lang}.jsonl"));
            if !file.is_file() {
                continue; // the paper has no 1-shot file for some languages (arabic)
            }
            let one = &read_prompt_jsonl(&file).unwrap()[*row];
            assert_eq!(&one.targets, target, "{lang} 1-shot row {row}");
            let (intro, query) = zero.split_once(" context: ").unwrap();
            let demo = one.inputs.strip_suffix(&format!(" |  context: {query}")).unwrap_or_else(|| {
                panic!("{lang} 1-shot row {row} does not end with the 0-shot question")
            });
            let demo = demo.strip_prefix(&format!("{intro}context: ")).unwrap();
            let (demo, da) = demo.rsplit_once(" A: ").unwrap();
            let (dc, dq) = demo.rsplit_once(" Q: ").unwrap();
            let demo_zero = format!("{intro} context: {dc} Q: {dq} A:");
            assert_eq!(paper_one_shot(&demo_zero, da, zero), one.inputs, "{lang} 1-shot row {row}");
            let (c, q) = query.strip_suffix(" A:").unwrap().rsplit_once(" Q: ").unwrap();
            assert_eq!(dlm_eval::templates::tydiqa(lang, &[(dc, dq, da)], c, q), one.inputs, "{lang} 1-shot row {row}");
            checked += 1;
        }
        assert!(checked >= 2, "no fixture language has a 1-shot file in the paper's data");
    }
    // 1-shot from the dev file: the demonstration is the first other question of the same
    // language, laid out as in the paper's 1-shot files
    let opts = LoadOptions { shots: Some(1), ..LoadOptions::default() };
    let one = load(Task::TydiQa, &raw, &opts).unwrap();
    let names: Vec<&str> = one.subsets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["arabic", "english", "finnish", "japanese"]);
    for subset in &one.subsets {
        let want: Vec<_> = expected.iter().filter(|e| e.0 == subset.name).collect();
        assert!(want.len() >= 2, "{}: a 1-shot prompt needs two rows of the language", subset.name);
        assert_eq!(subset.examples.len(), want.len(), "{}", subset.name);
        for (i, (o, (lang, row, zero, target))) in subset.examples.iter().zip(&want).enumerate() {
            let demo = want[if i == 0 { 1 } else { 0 }];
            assert_eq!(o.prompt, paper_one_shot(&demo.2, &demo.3, zero), "{lang} row {row}, 1-shot");
            assert_eq!(&o.target, target, "{lang} row {row}, 1-shot");
        }
    }
}

/// The paper's TyDiQA 1-shot prompt spliced from two of its 0-shot prompts
/// (`{intro}  context: {c} Q: {q} A:`): the intro, the demonstration's
/// `context: {c} Q: {q} A:` with its answer and ` | `, then the question's
/// ` context: {c} Q: {q} A:` — the layout of `eval/tydiqa/1-shot/validation/*.jsonl`,
/// which `raw_tydiqa_prompts_equal_the_papers` checks when the data is present.
fn paper_one_shot(demo_zero: &str, demo_answer: &str, query_zero: &str) -> String {
    let (intro, demo) = demo_zero.split_once(" context: ").unwrap();
    let (query_intro, query) = query_zero.split_once(" context: ").unwrap();
    assert_eq!(intro, query_intro);
    assert!(intro.starts_with("Please answer each of the question according to the given context in "), "{intro}");
    format!("{intro}context: {demo} {demo_answer} |  context: {query}")
}
