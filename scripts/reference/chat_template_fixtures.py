#!/usr/bin/env python3
"""Golden chat-template renderings for crates/dlm-data/tests/chat_template_golden.rs.

Renders every case below with transformers' own `apply_chat_template(messages,
tokenize=False, add_generation_prompt=…)` on the fixture tokenizer configs
crates/dlm-data/tests/fixtures/chat/{llada,dream,features}/tokenizer_config.json and writes
crates/dlm-data/tests/fixtures/chat/expected.json. The Rust tests assert byte equality.

Pinned environment (no torch needed; a venv outside the repository):

    python3 -m venv /work/pychat
    /work/pychat/bin/pip install transformers==4.49.0 jinja2==3.1.6
    /work/pychat/bin/python scripts/reference/chat_template_fixtures.py

(/work/pyref, the venv of llada_dream_fixtures.py, has the same transformers and works too.)

The tokenizer of each case is `PreTrainedTokenizerFast.from_pretrained(dir)` on a temp dir
holding the fixture tokenizer_config.json and a one-word tokenizer.json, so transformers
itself reads the config (chat_template string or list, special tokens as strings or
AddedToken objects) exactly as from a model directory; only the vocabulary is fake, which
a template never sees (`tokenize=False`).

Where the fixture templates come from (the HuggingFace hub cannot be reached here):

- llada: GSAI-ML/LLaDA-8B-Instruct. `chat_template`, the special tokens and the other keys
  are verbatim from the tokenizer_config.json copied into the public GitHub repository
  yinj66/support_basis (LLaDA-8B-Instruct-B&S-light/tokenizer_config.json, commit
  66e6761ac3bb6b857dde77c13a5694fcee5b92f5); `added_tokens_decoder` is trimmed to the
  entries of the special tokens and the template's header tokens. The template is the
  original Meta-Llama-3-8B-Instruct one (it adds the assistant header whatever
  add_generation_prompt says) with bos <|startoftext|>. MUST BE VERIFIED against the
  released file: huggingface.co/GSAI-ML/LLaDA-8B-Instruct/blob/main/tokenizer_config.json.
- dream: Dream-org/Dream-v0-Instruct-7B. Not found verbatim in the public material. The
  template used is Qwen2.5's base-model template (Qwen/Qwen2.5-0.5B tokenizer_config.json
  @ 060db6499f32faf8b98477b0a26969ef7d8b9987, line 198; two independent public copies
  agree byte for byte): Dream was initialised from Qwen2.5-7B, and the default system
  prompt of this template ("You are a helpful assistant.") is the one in the example
  conversation of NVlabs/Fast-dLLM dream/demo_multiturn_chat.py (@ 24cc59e). The special
  tokens (bos <|beginoftext|>, eos/pad <|endoftext|>, mask <|mask|>, Qwen2.5's additional
  special tokens) are reconstructed, not copied. MUST BE VERIFIED against the released
  file: huggingface.co/Dream-org/Dream-v0-Instruct-7B/blob/main/tokenizer_config.json.
- features: a synthetic template written for these tests (no model uses it): a list of
  named templates (the "default" one is used), bos as an AddedToken object, namespace(),
  messages[1:], .strip()/.split()/.startswith()/.rstrip()/.capitalize(), tojson of a dict
  (key order, a float, HTML characters, non-ASCII) and tojson(indent=2), trim_blocks and
  lstrip_blocks with indented {% %} lines, `-` whitespace control, loop.first/last, and
  raise_exception (the case with "error" records the exception's message).
"""

import json
import os
import sys
import tempfile

import jinja2
import transformers
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "crates", "dlm-data", "tests", "fixtures", "chat")

SOURCES = {
    "llada": "GSAI-ML/LLaDA-8B-Instruct chat_template, verbatim from the copy in github.com/yinj66/support_basis "
    "(LLaDA-8B-Instruct-B&S-light/tokenizer_config.json @ 66e6761a); to be verified against the released file",
    "dream": "Dream-org/Dream-v0-Instruct-7B: Qwen2.5 base template (Qwen/Qwen2.5-0.5B tokenizer_config.json "
    "@ 060db649), default system prompt as in Fast-dLLM's Dream demo; special tokens reconstructed; to be "
    "verified against the released file",
    "features": "synthetic template exercising Jinja features (not a model's)",
}

SINGLE = [{"role": "user", "content": "What is the capital of France?"}]
MULTI_TURN = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "  Hi there!  \n"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Translate to German: 'good morning' \u2014 and explain \u00abwhy\u00bb.\nThanks \U0001F600"},
]
FEATURES_TURNS = [
    {"role": "system", "content": "  Be brief and exact.  "},
    {"role": "user", "content": " 2+2? "},
    {"role": "assistant", "content": '{"answer": 4, "note": "<ok> & \'fine\' \u00e9"}'},
    {"role": "user", "content": "and 3+3?\n"},
    {"role": "assistant", "content": "it is six.  "},
    {"role": "user", "content": "thanks"},
]
NOT_ALTERNATING = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]

CASES = []
for model in ("llada", "dream"):
    for name, messages in (("single_user", SINGLE), ("system_multi_turn", MULTI_TURN)):
        for gen in (True, False):
            CASES.append((model, name, messages, gen))
for gen in (True, False):
    CASES.append(("features", "system_multi_turn", FEATURES_TURNS, gen))
    CASES.append(("features", "no_system", FEATURES_TURNS[1:4], gen))
CASES.append(("features", "roles_not_alternating", NOT_ALTERNATING, True))


def load(model, tmp):
    """transformers' tokenizer for a fixture dir (its config, a fake one-word vocabulary)."""
    d = os.path.join(tmp, model)
    os.makedirs(d)
    with open(os.path.join(FIXTURES, model, "tokenizer_config.json"), encoding="utf-8") as f:
        config = f.read()
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        f.write(config)
    Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]")).save(os.path.join(d, "tokenizer.json"))
    return PreTrainedTokenizerFast.from_pretrained(d)


def main():
    out_cases = []
    with tempfile.TemporaryDirectory() as tmp:
        tokenizers = {m: load(m, tmp) for m in SOURCES}
        for model, name, messages, gen in CASES:
            case = {"model": model, "name": name, "add_generation_prompt": gen, "messages": messages}
            try:
                case["expected"] = tokenizers[model].apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=gen
                )
            except jinja2.exceptions.TemplateError as e:
                case["error"] = str(e)
            out_cases.append(case)
    out = {
        "generator": "scripts/reference/chat_template_fixtures.py",
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
        "sources": SOURCES,
        "cases": out_cases,
    }
    path = os.path.join(FIXTURES, "expected.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(out_cases)} cases to {os.path.relpath(path, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
