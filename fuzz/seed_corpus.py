#!/usr/bin/env python3
"""Rebuilds fuzz/corpus/<target>/ from the repository's own fixtures (small files only).

Run from the repository root: python3 fuzz/seed_corpus.py. The byte layouts (a leading
mode byte, NUL separators) are those of fuzz/src/lib.rs.
"""
import hashlib, json, re, shutil, struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
FIX = ROOT / "crates"


def put(target, data, name=None):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    name = name or hashlib.sha1(data).hexdigest()[:16]
    (d / name).write_bytes(data)


def read(p):
    return (ROOT / p).read_bytes()


shutil.rmtree(CORPUS, ignore_errors=True)

# server_request: mode byte (bit 0 chat, bit 1 Jinja model) + body, bodies from the tests.
bodies = re.findall(r'r#"(\{.*?\})"#', (FIX / "dlm-server/tests/protocol.rs").read_text())
bodies += [
    '{"prompt": "the capital of france is", "max_tokens": 7, "steps": 6, "seed": 1}',
    '{"prompt": ["one two", "red green blue"], "n": 2, "max_tokens": 5, "temperature": 1.0, "seed": 7}',
    '{"prompt": [0, 5, 7], "max_tokens": 3, "echo": true, "logprobs": 2}',
    '{"prompt": [[5, 6], [7]], "max_tokens": 0, "echo": true, "elbo_samples": 2}',
    '{"prompt": "x", "strategy": "llada", "block_length": 4, "remasking": "random", "stream": true, '
    '"stream_options": {"include_usage": true}, "stop": ["a", "b"]}',
    '{"prompt": "x", "strategy": "dream", "alg": "entropy", "alg_temp": 0.1, "top_p": 0.9, "top_k": 3}',
    '{"prompt": "x", "length_beam": 2, "schedule": "linear", "cache": "none"}',
]
chats = [
    '{"messages": [{"role": "user", "content": "say hello"}], "max_completion_tokens": 4, "steps": 3}',
    '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", '
    '"text": "hi"}]}, {"role": "assistant", "content": "yo"}, {"role": "developer", "content": "x"}], "max_tokens": 2}',
    '{"messages": [], "max_tokens": 2}',
    '{"messages": [{"role": "user"}]}',
]
for i, b in enumerate(bodies):
    put("server_request", bytes([0 if i % 2 == 0 else 2]) + b.encode())
for b in chats:
    put("server_request", b"\x01" + b.encode())
    put("server_request", b"\x03" + b.encode())

# prompt_jsonl: the demo data (first rows) and the eval fixture.
demo = read("data/demo/iwslt14-deen.jsonl").splitlines(keepends=True)
put("prompt_jsonl", b"".join(demo[:1]))
put("prompt_jsonl", b"".join(demo[1:6]))
put("prompt_jsonl", read("crates/dlm-eval/tests/fixtures/tydiqa-goldp-mini.expected.jsonl"))
put("prompt_jsonl", '{"inputs": "a", "targets": "b"}\n\n{"inputs": 1, "targets": "b"}\n')
put("prompt_jsonl", '{"inputs": "a"}\n[1, 2]\n')

# run_config: every config in configs/, one with overrides after a NUL.
for p in sorted((ROOT / "configs").glob("*.toml")):
    put("run_config", p.read_bytes(), p.stem)
put("run_config", read("configs/tiny-cpu.toml") + b"\0optimizer.lr=1e-3\ndata.train=x.jsonl\nobjective.mask_eps=2\n",
    "tiny-cpu-overrides")

# tokenizer_files: 0 tokenizer.json, 1 vocab.txt, 2 SentencePiece .model.
for p in sorted((FIX / "dlm-models/tests/fixtures").glob("*/tokenizer.json")):
    put("tokenizer_files", b"\0" + p.read_bytes())
put("tokenizer_files", b"\1" + read("crates/dlm-models/tests/fixtures/tiny-bert/vocab.txt"))


def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def field(n, wire, payload):
    key = varint((n << 3) | wire)
    return key + (varint(len(payload)) + payload if wire == 2 else payload)


def spm(model_type):
    # As crates/dlm-data/tests/common/spm_proto.rs writes them.
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3), ("▁", -3.0, 1)]
    pieces += [(c, -5.0, 1) for c in "helowrd"] + [("<extra>", 0.0, 4)]
    out = b""
    for p, score, kind in pieces:
        m = field(1, 2, p.encode()) + varint((2 << 3) | 5) + struct.pack("<f", score) + field(3, 0, varint(kind))
        out += field(1, 2, m)
    t = field(3, 0, varint(model_type)) + field(4, 0, varint(len(pieces)))
    t += field(40, 0, varint(0)) + field(41, 0, varint(1)) + field(42, 0, varint(2))
    out += field(2, 2, t)
    n = field(1, 2, b"nmt_nfkc") + field(3, 0, varint(1)) + field(4, 0, varint(1)) + field(5, 0, varint(1))
    return out + field(3, 2, n)


put("tokenizer_files", b"\2" + spm(1), "spm-unigram")
put("tokenizer_files", b"\2" + spm(2), "spm-bpe")

# safetensors: the tiny BERT checkpoint (matches the config the target writes), others.
for p in ["crates/dlm-models/tests/fixtures/tiny-bert/model.safetensors",
          "crates/dlm-models/tests/fixtures/tiny-bert-legacy/model.safetensors",
          "crates/dlm-diffusion/tests/fixtures/length-predictor/length_predictor.safetensors",
          "crates/dlm-models/tests/fixtures/tiny-roberta/model-00003-of-00003.safetensors"]:
    put("safetensors", read(p), Path(p).parent.name + "-" + Path(p).name)
header = json.dumps({"__metadata__": {"format": "pt"}, "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
put("safetensors", struct.pack("<Q", len(header)) + header.encode() + b"\0" * 8, "one-tensor")

# fairseq_dict: the importer fixture and small variants.
d = read("crates/dlm-train/tests/fixtures/diffusionllm/pruned-bin/dict.txt")
put("fairseq_dict", d, "pruned-bin")
put("fairseq_dict", d + b"<mask> 0\n", "with-mask")
put("fairseq_dict", b"a 1\nb 2 #fairseq:overwrite\na 3 #fairseq:overwrite\n")

# torch_checkpoint: the torch.save zips of the fixtures.
for p in ["crates/dlm-models/tests/fixtures/tiny-bert-untied-bin/pytorch_model.bin",
          "crates/dlm-train/tests/fixtures/diffusionllm/untied-zero/global_step12/mp_rank_00_model_states.pt",
          "crates/dlm-train/tests/fixtures/diffusionllm/untied-zero/global_step3/mp_rank_00_model_states.pt",
          "crates/dlm-train/tests/fixtures/diffusionllm/tied-bin/pytorch_model.bin"]:
    put("torch_checkpoint", read(p), Path(p).parent.name + "-" + Path(p).name)
# ... and small ones (fuzz/seeds/make_torch_seeds.py), so most executions are fast.
for p in sorted((ROOT / "fuzz" / "seeds").glob("*.pt")):
    put("torch_checkpoint", p.read_bytes(), p.name)

# chat_template: each fixture's template, NUL, then messages.
msgs = "\0system:be brief\0hello there\0assistant:hi\0what is 2+2?"
for p in sorted((FIX / "dlm-data/tests/fixtures/chat").glob("*/tokenizer_config.json")):
    t = json.loads(p.read_text()).get("chat_template")
    if isinstance(t, str):
        put("chat_template", t + msgs, p.parent.name)
    elif isinstance(t, list):
        for i, e in enumerate(t):
            put("chat_template", e["template"] + msgs, f"{p.parent.name}-{i}")
put("chat_template", "{% for m in messages %}{{ m.role }}: {{ m.content | trim }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}" + msgs, "simple")
put("chat_template", "{{ raise_exception('no') }}\0x", "raise")
