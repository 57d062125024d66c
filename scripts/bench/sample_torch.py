"""PyTorch side of the sampling benchmark (scripts/bench/sample.sh): the authors' released
sampler (reparam-uncond, cosine schedule, argmax; every step a full forward with vocabulary
logits at every position) as transcribed in scripts/reference/released_sampler.py, batched,
on an XLM-R-base-shaped XLMRobertaForMaskedLM with random weights.

When DIR has no config.json, the model is created (seeded) and saved there as safetensors +
config.json, with the real XLM-R tokenizer.json beside it, so that the Rust side runs the
very same weights and tokenizer. Canvases are the oracle-length ones of SPEC §2/§4: the
first PROMPTS rows of the prompted JSONL, `<s> prompt <mask>×L </s>` with L the reference's
token count, BATCH rows at a time in file order. After one warm-up batch the whole set runs
REPEATS times in f32 and in bf16 autocast; prints one JSON line with the median seconds per
run, the number of generated tokens, the canvases and the outputs (generated ids per prompt).

Usage: python sample_torch.py DIR DATA.jsonl TOKENIZER.json [PROMPTS] [BATCH] [STEPS] [REPEATS]
Env: DEVICE (cpu, the default, or cuda); THREADS (torch threads, default 2); LAYERS, HIDDEN, HEADS, FFN (the shape of a newly
created model, default 12, 768, 12, 3072: XLM-R base) for small functional runs.
Pinned: torch==2.15.0, transformers==4.57.1, tokenizers, safetensors.
"""
import contextlib
import json
import os
import shutil
import statistics
import sys
import time

import torch
from tokenizers import Tokenizer
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from released_sampler import pad_rows, reparam_generate  # noqa: E402

out, data, tokenizer_file = sys.argv[1:4]
given = [int(a) for a in sys.argv[4:8]]
prompts, batch, steps, repeats = given + [16, 8, 10, 3][len(given):]
torch.set_num_threads(int(os.environ.get("THREADS", "2")))


def create(path):
    """A randomly initialised XLM-R-shaped MLM (vocabulary 250,002, 514 positions), saved."""
    env = lambda k, d: int(os.environ.get(k, d))  # noqa: E731
    config = XLMRobertaConfig(
        vocab_size=250002, hidden_size=env("HIDDEN", 768), num_hidden_layers=env("LAYERS", 12),
        num_attention_heads=env("HEADS", 12), intermediate_size=env("FFN", 3072), max_position_embeddings=514,
        type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)
    torch.manual_seed(0)
    XLMRobertaForMaskedLM(config).save_pretrained(path, safe_serialization=True)
    shutil.copyfile(tokenizer_file, os.path.join(path, "tokenizer.json"))


if not os.path.exists(os.path.join(out, "config.json")):
    create(out)
device = torch.device(os.environ.get("DEVICE", "cpu"))
model = XLMRobertaForMaskedLM.from_pretrained(out).eval().to(device)
tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
BOS, PAD, EOS, MASK = (tok.token_to_id(t) for t in ("<s>", "<pad>", "</s>", "<mask>"))
MAX_LEN = model.config.max_position_embeddings - 2  # RoBERTa positions start at pad + 1


def oracle_canvas(row):
    """SPEC §2 `src[:-1] + tgt[1:]` with the response tokens (not `</s>`) masked."""
    src, tgt = tok.encode(row["inputs"]).ids, tok.encode(row["targets"]).ids
    ids = src[:-1] + tgt[1:]
    if len(ids) > MAX_LEN:
        raise SystemExit(f"{data}: a prompt and its reference take {len(ids)} tokens, more than {MAX_LEN}")
    gen = [i >= len(src) - 1 and t not in (BOS, PAD, EOS) for i, t in enumerate(ids)]
    return [MASK if g else t for t, g in zip(ids, gen)], gen


with open(data) as f:
    rows = [json.loads(line) for line in f if line.strip()][:prompts]
if len(rows) < prompts:
    raise SystemExit(f"{data}: {len(rows)} rows, {prompts} prompts asked for")
canvases = [oracle_canvas(r) for r in rows]
batches = []
for i in range(0, len(canvases), batch):
    chunk = canvases[i:i + batch]
    canv = pad_rows([c for c, _ in chunk], PAD)
    gen = torch.tensor([g + [False] * (canv.shape[1] - len(g)) for _, g in chunk])
    batches.append((canv.to(device), gen.to(device)))


def logits_of(tokens):
    return model(input_ids=tokens, attention_mask=tokens.ne(PAD).long()).logits.float()


def run(part):
    outputs = []
    for canv, gen in part:
        toks, _, _, _ = reparam_generate(logits_of, canv, gen, steps, "cosine", "uncond", MASK, record=False)
        outputs.extend(toks[i][gen[i]].tolist() for i in range(len(gen)))
    return outputs


def bench(ctx):
    times = []
    with torch.inference_mode(), ctx():
        run(batches[:1])  # warm-up
        for _ in range(repeats):
            t = time.perf_counter()
            outputs = run(batches)
            times.append(time.perf_counter() - t)
    return statistics.median(times), outputs


f32_s, f32_out = bench(contextlib.nullcontext)
bf16_s, bf16_out = bench(lambda: torch.autocast(device.type, dtype=torch.bfloat16))
print(json.dumps({
    "impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
    "attention": model.config._attn_implementation, "prompts": prompts, "batch": batch, "steps": steps,
    "tokens": sum(sum(g) for _, g in canvases), "f32_s": f32_s, "bf16_s": bf16_s,
    "canvases": [c for c, _ in canvases], "f32_outputs": f32_out, "bf16_outputs": bf16_out,
}))
