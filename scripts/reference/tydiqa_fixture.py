#!/usr/bin/env python3
"""A small TyDiQA GoldP raw fixture for crates/dlm-eval (tests/paper_prompts.rs), written
from the paper's own prompted TyDiQA files, since the raw dev JSON is not in ../shared/data.

TyDiQA (Clark et al., 2020) is Apache-2.0. Each chosen row of
`eval/tydiqa/0-shot/validation/<language>.jsonl` is parsed back into (context, question,
answer) and written in the official GoldP layout
({"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers"}]}]}]},
ids prefixed by the language), together with the paper's rows themselves, so the test can
check that the raw loader rebuilds them character for character.

Run from the repository root:  python3 scripts/reference/tydiqa_fixture.py [--data ../shared/data]
(in a git worktree, pass --data with the absolute path)
"""

import argparse
import json
from pathlib import Path

# (language, 0-based rows of the paper's 0-shot file); finnish row 6 has a context that
# starts with blank lines, arabic and japanese are non-Latin scripts. Every language needs
# at least two rows: a 1-shot prompt built from this file takes its demonstration from
# another question of the same language.
PICKS = [("english", [0, 1, 2]), ("finnish", [0, 6]), ("arabic", [0, 5]), ("japanese", [0, 3])]
HEADER = "Please answer each of the question according to the given context in {}.  context: "


def parse(row, language):
    prompt = row["inputs"]
    head = HEADER.format(language)
    assert prompt.startswith(head) and prompt.endswith(" A:"), prompt[:120]
    body = prompt[len(head):-len(" A:")]
    context, question = body.rsplit(" Q: ", 1)
    return context, question


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="crates/dlm-eval/tests/fixtures")
    args = ap.parse_args()
    for language, rows in PICKS:
        assert len(rows) >= 2, f"{language}: 1-shot prompts need at least two rows per language"
    base = Path(args.data) / "eval/tydiqa/0-shot/validation"
    articles, expected = [], []
    for language, rows in PICKS:
        lines = (base / f"{language}.jsonl").read_text(encoding="utf-8").split("\n")
        for i in rows:
            row = json.loads(lines[i])
            context, question = parse(row, language)
            start = context.find(row["targets"])
            articles.append({
                "title": f"{language} row {i}",
                "paragraphs": [{
                    "context": context,
                    "qas": [{
                        "id": f"{language}-paper-row-{i}",
                        "question": question,
                        "answers": [{"text": row["targets"], "answer_start": start}],
                    }],
                }],
            })
            expected.append({"language": language, "paper_row": i, **row})
    out = Path(args.out)
    raw = {"version": "TyDiQA-GoldP-1.1-dev (a few rows, rebuilt from the paper's prompted files)", "data": articles}
    (out / "tydiqa-goldp-mini.json").write_text(json.dumps(raw, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out / "tydiqa-goldp-mini.expected.jsonl").write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in expected), encoding="utf-8")
    print(f"{len(expected)} questions")


if __name__ == "__main__":
    main()
