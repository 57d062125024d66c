//! The official TyDiQA GoldP JSON (`tydiqa-goldp-v1.1-dev.json`, SQuAD-like:
//! `{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
//! "answers": [{"text", "answer_start"}]}]}]}]}`), prompted as the paper's TyDiQA files
//! (`eval/tydiqa/<k>-shot/validation/<language>.jsonl`): one subset per language, named by
//! the id prefix (`english-…` → `english`), sorted by name; questions in file order; the
//! target is the first answer's text.
//!
//! Zero-shot prompts equal the paper's character for character. The paper's 1-shot
//! demonstrations are training-set questions drawn per example; from the dev file alone
//! this loader takes the first `k` other questions of the same language instead.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{demo_indices, read_text};
use crate::error::{EvalError, Result};
use crate::example::{Example, Subset};
use crate::templates;

pub(crate) const TEMPLATE: &str = "Please answer each of the question according to the given context in {language}. [context: {c} Q: {q} A: {a} | ]×k  context: {context} Q: {question} A: → the first answer (the paper's TyDiQA files)";

#[derive(Deserialize)]
struct File {
    data: Vec<Article>,
}

#[derive(Deserialize)]
struct Article {
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    context: String,
    qas: Vec<Qa>,
}

#[derive(Deserialize)]
struct Qa {
    id: String,
    question: String,
    answers: Vec<Answer>,
}

#[derive(Deserialize)]
struct Answer {
    text: String,
}

/// One question with its context.
struct Row<'a> {
    context: &'a str,
    question: &'a str,
    answer: &'a str,
}

pub(crate) fn load(file: &Path, shots: usize) -> Result<Vec<Subset>> {
    let parsed: File = serde_json::from_str(&read_text(file)?).map_err(|e| {
        EvalError::input(
            file,
            format!("not TyDiQA GoldP JSON ({{\"data\": [{{\"paragraphs\": [{{\"context\", \"qas\"}}]}}]}}): {e}"),
        )
    })?;
    let mut by_language: BTreeMap<&str, Vec<Row>> = BTreeMap::new();
    for (a, article) in parsed.data.iter().enumerate() {
        for (p, paragraph) in article.paragraphs.iter().enumerate() {
            for qa in &paragraph.qas {
                let at = || format!("data[{a}].paragraphs[{p}], question {:?}", qa.id);
                let (language, _) = qa.id.split_once('-').ok_or_else(|| {
                    EvalError::input(file, format!("{}: the id has no \"<language>-\" prefix", at()))
                })?;
                let answer = qa.answers.first().ok_or_else(|| {
                    EvalError::input(file, format!("{}: no answers", at()))
                })?;
                by_language.entry(language).or_default().push(Row {
                    context: &paragraph.context,
                    question: &qa.question,
                    answer: &answer.text,
                });
            }
        }
    }
    if by_language.is_empty() {
        return Err(EvalError::input(file, "no questions"));
    }
    by_language
        .into_iter()
        .map(|(language, rows)| {
            let n = rows.len();
            let mut examples = Vec::with_capacity(n);
            for (i, row) in rows.iter().enumerate() {
                let demos: Vec<(&str, &str, &str)> = demo_indices(i, shots, n, file)?
                    .into_iter()
                    .map(|j| (rows[j].context, rows[j].question, rows[j].answer))
                    .collect();
                examples.push(Example {
                    prompt: templates::tydiqa(language, &demos, row.context, row.question),
                    target: row.answer.to_string(),
                    options: None,
                });
            }
            Ok(Subset {
                name: language.to_string(),
                source: file.to_path_buf(),
                examples,
            })
        })
        .collect()
}
