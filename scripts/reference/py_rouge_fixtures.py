#!/usr/bin/env python3
"""Golden fixture for dlm-metrics' py_rouge module: ROUGE-L as the paper's authors computed
it with py-rouge (DiffusionLLM src/dd_generator.py: `Rouge(["rouge-l"])`, defaults
stemming=True, limit_length=True, length_limit=665 'bytes', alpha=0.5, apply_avg=True).

Install the reference in a venv OUTSIDE the repository:

    /work/pyref/bin/pip install py-rouge==1.1 nltk==3.10.4

Run from the repository root (reads the committed metric corpora, writes two files):

    /work/pyref/bin/python scripts/reference/py_rouge_fixtures.py

  crates/dlm-metrics/tests/fixtures/py_rouge.json  per-segment and mean ROUGE-L P/R/F for
      the committed corpora (plus long multi-sentence texts for the length limit) under
      the authors' defaults and three variants; NLTK PorterStemmer('ORIGINAL_ALGORITHM')
      on a vocabulary
  crates/dlm-metrics/data/py_rouge_wordnet.txt  py-rouge's WordNet tables, reduced to
      the keys it can look up (tokens of [a-z0-9] longer than 3 characters)

py-rouge tokenizes with nltk.word_tokenize, which first splits sentences with the Punkt
model (an nltk_data download). py-rouge only tokenizes text that it has already reduced to
[a-z0-9 ] (plus its "_cannot_" guard), where Punkt finds no sentence boundary, so
word_tokenize equals NLTKWordTokenizer().tokenize on the same text; this script patches
that in, and needs no nltk_data.
"""

import json
import random
from pathlib import Path

import nltk
import rouge
from nltk.stem.porter import PorterStemmer
from nltk.tokenize.destructive import NLTKWordTokenizer

_TOKENIZER = NLTKWordTokenizer()
rouge.Rouge.tokenize_text = staticmethod(lambda text, language="english": _TOKENIZER.tokenize(text))

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "crates/dlm-metrics/tests/fixtures"
SEED = 20261130

VARIANTS = {
    "authors": {},  # py-rouge defaults, as in the paper's code
    "no_stemming": {"stemming": False},
    "no_limit": {"limit_length": False},
    "alpha_0.2": {"alpha": 0.2},
}


def long_texts(corpora, rng):
    """Multi-sentence summaries past the 665-character limit, with hand-made hard cases."""
    pool = [r for c in ("iwslt_en", "lsum") for r in corpora[c]["refs"][0] if r]
    hyps, refs = [], []
    for _ in range(12):
        ref = "\n".join(rng.sample(pool, 14))
        sents = ref.split("\n")
        rng.shuffle(sents)
        hyps.append("\n".join(sents[: rng.randint(3, 14)]))
        refs.append(ref)
    hard = [
        ("I cannot go. We're gonna win, wanna bet? Gimme five; lemme see, gotta run.",
         "They can not go; we cannot lose. Wanna? gonna! gotta lemme gimme"),
        ("The studies were running happily; mice and geese flew.",
         "A study was run happily by the mouse and the goose flying."),
        ("  padded line  \n\n  another  ", "padded line\nanother"),
        ("x" * 700, "x" * 700),
        ("Ünïcödé wörds ﬁne İstanbul", "unicode words fine istanbul"),
        ("a a a b", "a b b b"),
    ]
    for h, r in hard:
        hyps.append(h)
        refs.append(r)
    return hyps, refs


def score_case(name, hyps, refs, variant, kwargs):
    scorer = rouge.Rouge(["rouge-l"], **kwargs)
    scorer_seg = rouge.Rouge(["rouge-l"], apply_avg=False, **kwargs)
    segs = scorer_seg.get_scores(hyps, [[r] for r in refs])["rouge-l"]
    mean = scorer.get_scores(hyps, [[r] for r in refs])["rouge-l"]
    return {
        "corpus": name,
        "variant": variant,
        "n": len(hyps),
        "mean": [mean["p"], mean["r"], mean["f"]],
        # per segment: [precision, recall, fmeasure]
        "segments": [[s["p"][0], s["r"][0], s["f"][0]] for s in segs],
    }


def main():
    corpora = json.loads((FIXTURES / "corpora.json").read_text())["corpora"]
    rng = random.Random(SEED)
    texts = {}
    for name in ["iwslt_en", "iwslt_tok_en", "edge", "lsum", "tydiqa_multi"]:
        c = corpora[name]
        hyps, refs = c["hyps"][:120], c["refs"][0][:120]
        texts[name] = (hyps, refs)
    texts["long"] = long_texts(corpora, rng)
    cases = []
    for name, (hyps, refs) in texts.items():
        for variant, kwargs in VARIANTS.items():
            if name != "iwslt_en" and variant == "alpha_0.2":
                continue
            cases.append(score_case(name, hyps, refs, variant, kwargs))

    words = set()
    for hyps, refs in texts.values():
        for s in hyps + refs:
            words.update(w for w in rouge.Rouge.REMOVE_CHAR_PATTERN.sub(" ", s.lower()).split())
    original = PorterStemmer(PorterStemmer.ORIGINAL_ALGORITHM)
    porter = sorted([w, original.stem(w)] for w in words)

    out = {
        "meta": {"py_rouge": "1.1", "nltk": nltk.__version__, "seed": SEED},
        "long_corpus": {"hyps": texts["long"][0], "refs": texts["long"][1]},
        "cases": cases,
        "porter_original": porter,
    }
    (FIXTURES / "py_rouge.json").write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")))

    pkg = Path(rouge.__file__).parent
    lines = []
    for f in ["wordnet_key_value.txt", "wordnet_key_value_special_cases.txt"]:
        for line in (pkg / f).read_text(encoding="utf-8").splitlines():
            k, _ = line.strip().split("|")
            if len(k) > 3 and k.isascii() and k.isalnum() and k == k.lower():
                lines.append(line.strip())
    header = [
        "# py-rouge 1.1 (Apache-2.0, github.com/Diego999/py-rouge): wordnet_key_value.txt + "
        "wordnet_key_value_special_cases.txt,",
        "# only the keys py-rouge can look up (tokens of [a-z0-9] longer than 3 characters). "
        "Made by scripts/reference/py_rouge_fixtures.py.",
    ]
    (ROOT / "crates/dlm-metrics/data/py_rouge_wordnet.txt").write_text("\n".join(header + lines) + "\n")
    print(f"{len(cases)} cases, {len(porter)} stems, {len(lines)} wordnet entries")


if __name__ == "__main__":
    main()
