#!/usr/bin/env bash
# Sampling throughput, dlm vs the authors' released sampler transcribed batched in PyTorch
# (reparam-uncond, cosine, argmax, every step a full forward with vocabulary logits at every
# position; scripts/reference/released_sampler.py), in one run on the same weights: an
# XLM-R-base-shaped model with random weights and the real XLM-R tokenizer, the first 16
# IWSLT14 De→En prompts of the paper's prompted set, K = 10, batch 8, oracle length.
# Reports generated tokens/s for dlm f32/bf16 and PyTorch f32/bf16 autocast, whether the f32
# outputs are identical prompt by prompt, and dlm's best ÷ the released sampler's best.
# Measure on a quiet machine: no build, test or other job beside it.
#
# Needs a Python with torch + transformers + tokenizers: PYTHON=/path/to/python (default
# python3), and the XLM-R tokenizer (bash scripts/fetch-models.sh).
# Env: BENCH_DIR (model directory, created once, default /tmp/dlm-bench-xlmr-base), DATA,
# TOKENIZER, PROMPTS (16), BATCH (8), STEPS (10), REPEATS (3), THREADS (2; torch threads and
# dlm's thread pool); LAYERS, HIDDEN, HEADS, FFN shape a newly created model (a small one
# for a functional check: use another BENCH_DIR); PROFILE (cargo profile of the dlm side,
# default release; `dev` for a quick functional check with the dev build).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${BENCH_DIR:-/tmp/dlm-bench-xlmr-base}
data=${DATA:-../shared/data/eval/iwslt14/0-shot/validation/deen.jsonl}
tokenizer=${TOKENIZER:-.cache/models/xlmr-tokenizer/tokenizer.json}
args=("${PROMPTS:-16}" "${BATCH:-8}" "${STEPS:-10}" "${REPEATS:-3}")
export THREADS=${THREADS:-2}
export DLM_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS
for f in "$data" "$tokenizer"; do
    [ -f "$f" ] || { echo "sample.sh: $f is missing" >&2; exit 1; }
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
profile=${PROFILE:-release}
[ -n "${BIN:-}" ] || PROFILE=$profile bash scripts/bench/build.sh # before measuring
bash scripts/bench/machine.sh
${PYTHON:-python3} scripts/bench/sample_torch.py "$dir" "$data" "$tokenizer" "${args[@]}" | tail -1 > "$out/pytorch.json"
bindir=$profile; [ "$profile" != dev ] || bindir=debug
${BIN:-target/$bindir/examples}/sample_bench "$dir" "$data" "${args[@]}" > "$out/dlm.json"
bash scripts/bench/machine.sh | tail -1
python3 - "$out/pytorch.json" "$out/dlm.json" <<'PY'
import json, sys
p, r = (json.load(open(f)) for f in sys.argv[1:3])
if p["canvases"] != r["canvases"]:
    sys.exit("the canvases differ between PyTorch and dlm: the comparison is void")
n = p["tokens"]
print(f"{p['prompts']} prompts, {n} generated tokens, batch {p['batch']}, K = {p['steps']}; "
      f"torch {p['torch']} ({p['threads']} threads, {p['attention']} attention)")
rate = {}
for who, j in (("pytorch (released sampler)", p), ("dlm", r)):
    for k in ("f32", "bf16"):
        rate[who, k] = n / j[f"{k}_s"]
        print(f"{who} {k}: {j[f'{k}_s']:.3f} s, {rate[who, k]:.1f} tokens/s")
same = [a == b for a, b in zip(p["f32_outputs"], r["f32_outputs"])]
print(f"f32 outputs identical: {sum(same)}/{len(same)} prompts"
      + ("" if all(same) else f" (differ: {[i for i, s in enumerate(same) if not s]})"))
same16 = sum(a == b for a, b in zip(p["bf16_outputs"], r["bf16_outputs"]))
print(f"bf16 outputs identical (not expected): {same16}/{len(same)} prompts")
best = lambda who: max(rate[who, "f32"], rate[who, "bf16"])  # noqa: E731
print(f"dlm best / released best throughput: {best('dlm') / best('pytorch (released sampler)'):.2f}")
PY
