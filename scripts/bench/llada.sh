#!/usr/bin/env bash
# LLaDA / Dream, dlm vs the authors' PyTorch reference code, in one run on the same weights,
# ids and prompt: a LLaDA-shaped (MODEL=llada, the default) or Dream-shaped (MODEL=dream)
# 12-layer model with random weights (scripts/bench/llada_dream_models.py; created on the
# first run, f32 safetensors) and
#   1. the forward: logits of batch 1 x (prompt 64 + 256) tokens and 4 x 128 (SHAPES), dlm's
#      forward_bench example vs Fast-dLLM's modeling_llada / modeling_dream; f32 and bf16
#      (PyTorch: bf16 autocast); median of REPEATS forwards per round, best of ROUNDS rounds
#      that alternate the two sides (as forward.sh), dlm ÷ PyTorch time via ratios.py;
#   2. a whole generation without cache: one prompt of 64 ids, 256 tokens, 256 steps, block
#      length 32, temperature 0: LLaDA's original generate() vs `dlm generate --strategy
#      llada` (on Dream: over the shifted logits), and for MODEL=dream also Dream's
#      diffusion_generate(alg="maskgit_plus") vs `dlm generate --strategy dream --alg
#      maskgit-plus` (+ `--top-k 50`: with transformers 4.49 diffusion_generate inherits
#      top_k 50 from the model config's global generation defaults; llada_torch.py reports
#      what it really applies and llada_dlm.py passes that on); tokens/s per side and dtype
#      (best of GEN_REPEATS; dlm's time is end to end minus a load-only run, see
#      llada_dlm.py), dlm ÷ PyTorch throughput, and whether the f32 outputs are identical
#      token by token.
# Prints the machine and the load average before and after. Measure on a quiet machine: no
# build, test or other job beside it (a full run takes about an hour or more on 2 cores).
# docs/llada-dream.md "Benchmarks" has the details.
#
# Needs a Python with torch + transformers==4.49.0 + einops + safetensors (the version
# Fast-dLLM pins; e.g. /work/pyref): PYTHON=/path/to/python (default python3), and git
# mirrors of NVlabs/Fast-dLLM and ML-GSAI/LLaDA holding the pinned commits (FAST_DLLM_MIRROR,
# LLADA_MIRROR; defaults under /work/.mirror).
# Env: MODEL (llada|dream), BENCH_DIR (model directory, created once; default
# .cache/bench/$MODEL-bench), SHAPES ("1x320 4x128"), REPEATS (5), ROUNDS (1), PROMPT (64),
# GEN (256), STEPS (256), BLOCK (32), GEN_REPEATS (1), GEN_DTYPES (f32,bf16), ALGS (llada;
# dream adds "dream"; "fast-dllm" = Fast-dLLM's threshold loop vs --strategy fast-dllm,
# THRESHOLD 0.9), SKIP (forward or generate: leave that part out), THREADS (2: torch threads
# and dlm's thread pool), KEEP (a folder to keep the JSON lines in); PROFILE (cargo profile,
# default release; dev for a functional check), BIN (folder of a prebuilt forward_bench) and
# DLM (a prebuilt dlm binary): with either set nothing is built, and a missing DLM falls back
# to target/release/dlm, then target/debug/dlm.
# SMOKE=1: a functional check, no measurement: a 2-layer model with a 32000-token vocabulary
# (.cache/bench/$MODEL-smoke), prompt 16, 16 tokens, 16 steps, block 8, shapes 1x32 2x16,
# REPEATS 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${MODEL:-llada}
case $model in llada | dream) ;; *) echo "llada.sh: MODEL=llada or MODEL=dream, not $model" >&2; exit 1 ;; esac
smoke=${SMOKE:-0}
if [ "$smoke" != 0 ]; then
    dir=${BENCH_DIR:-.cache/bench/$model-smoke}
    shapes=${SHAPES:-1x32 2x16} repeats=${REPEATS:-2} prompt=${PROMPT:-16} gen=${GEN:-16} steps=${STEPS:-16} block=${BLOCK:-8}
else
    dir=${BENCH_DIR:-.cache/bench/$model-bench}
    shapes=${SHAPES:-1x320 4x128} repeats=${REPEATS:-5} prompt=${PROMPT:-64} gen=${GEN:-256} steps=${STEPS:-256} block=${BLOCK:-32}
fi
algs=${ALGS:-llada$([ "$model" = dream ] && echo " dream" || true)}
gen_repeats=${GEN_REPEATS:-1} gen_dtypes=${GEN_DTYPES:-f32,bf16} threshold=${THRESHOLD:-0.9}
py=${PYTHON:-python3}
export THREADS=${THREADS:-2}
export DLM_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS

profile=${PROFILE:-release}
bindir=$profile; [ "$profile" != dev ] || bindir=debug
if [ -z "${BIN:-}" ] && [ -z "${DLM:-}" ]; then # before measuring; one feature resolution for both
    cargo build -q --profile "$profile" -p dlm-cli --bin dlm -p dlm-models --example forward_bench
fi
bin=${BIN:-target/$bindir/examples}
dlm=${DLM:-target/$bindir/dlm}
for d in target/release/dlm target/debug/dlm; do [ -x "$dlm" ] || dlm=$d; done
[ -x "$dlm" ] || [ "${SKIP:-}" = generate ] || { echo "llada.sh: no dlm binary (DLM=...)" >&2; exit 1; }
if [ ! -f "$dir/config.json" ]; then
    "$py" scripts/bench/llada_dream_models.py --model "$model" --out "$dir" $([ "$smoke" = 0 ] || echo --smoke)
fi
out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$out"' EXIT
# The Dream sampler's CLI flags are recent: compare diffusion_generate only where dlm has them.
if [ "${SKIP:-}" != generate ] && [[ " $algs " == *" dream "* ]]; then
    help=$("$dlm" generate --help)
    if ! grep -q -- '--alg' <<< "$help" || ! grep -qw dream <<< "$help"; then
        echo "note: $dlm generate has no --strategy dream / --alg: the diffusion_generate comparison is left out"
        algs=$(sed 's/\bdream\b//' <<< "$algs")
    fi
fi

echo "model: $model ($dir), dlm: $dlm, forward_bench: $bin/forward_bench, threads: $THREADS$([ "$smoke" = 0 ] || echo ', SMOKE: a functional check, not a measurement')"
bash scripts/bench/machine.sh
if [ "${SKIP:-}" != forward ]; then
    for shape in $shapes; do
        for r in $(seq "${ROUNDS:-1}"); do # alternating rounds, as forward.sh
            "$py" scripts/bench/llada_torch.py "$model" "$dir" forward "$shape" "$repeats" | tail -1 > "$out/forward-$shape-pytorch-$r.json"
            SHAPE=$shape "$bin/forward_bench" "$dir" "$repeats" > "$out/forward-$shape-dlm-$r.json"
        done
    done
fi
if [ "${SKIP:-}" != generate ]; then
    for alg in $algs; do
        "$py" scripts/bench/llada_torch.py "$model" "$dir" generate "$alg" "$prompt" "$gen" "$steps" "$block" \
            "$gen_repeats" "$gen_dtypes" "$threshold" | tail -1 > "$out/generate-$alg-pytorch.json"
        python3 scripts/bench/llada_dlm.py "$dlm" "$dir" "$alg" "$out/generate-$alg-pytorch.json" \
            "$gen_repeats" "$gen_dtypes" "$threshold" > "$out/generate-$alg-dlm.json"
    done
fi
bash scripts/bench/machine.sh | tail -1

if [ "${SKIP:-}" != forward ]; then
    for shape in $shapes; do
        rounds=${ROUNDS:-1}
        echo "forward $shape (batch x tokens), logits of every position; seconds per forward, median of $repeats:"
        cat "$out/forward-$shape-pytorch-"*.json "$out/forward-$shape-dlm-"*.json
        pys=() rss=()
        for r in $(seq "$rounds"); do
            pys+=("$(cat "$out/forward-$shape-pytorch-$r.json")") rss+=("$(cat "$out/forward-$shape-dlm-$r.json")")
        done
        python3 scripts/bench/ratios.py s "$rounds" "${pys[@]}" "${rss[@]}"
    done
fi
if [ "${SKIP:-}" != generate ]; then
    for alg in $algs; do
        python3 - "$out/generate-$alg-pytorch.json" "$out/generate-$alg-dlm.json" <<'PY'
import json, sys
p, r = (json.load(open(f)) for f in sys.argv[1:3])
n = p["tokens"]
ref = {"llada": "LLaDA generate()" + (" over the shifted logits" if p["model"] == "dream" else ""),
       "fast-dllm": f"Fast-dLLM generate(threshold={p['threshold']})",
       "dream": f"Dream diffusion_generate(alg='maskgit_plus'; as run: top_k {p.get('top_k')}, top_p {p.get('top_p')})"}[p["alg"]]
print(f"generate, {p['model']}, {ref}: prompt {len(p['prompt_ids'])}, {n} tokens, {p['steps']} steps, "
      f"block {p['block_length']}, temperature 0, no cache, batch 1; torch {p['torch']} ({p['threads']} threads)")
print(f"  dlm: {r['command']} ({r['timing']})")
dtypes = [k[:-2] for k in p if k.endswith("_s") and k[:-2] in ("f32", "bf16")]
rate = {}
for k in dtypes:
    nfe = f", nfe {p[k + '_nfe']}" if k + "_nfe" in p else ""
    for who, j in (("pytorch", p), ("dlm", r)):
        rate[who, k] = n / j[f"{k}_s"]
    print(f"  {k}: pytorch {p[k + '_s']:.3f} s ({rate['pytorch', k]:.2f} tokens/s{nfe}), dlm {r[k + '_s']:.3f} s "
          f"({rate['dlm', k]:.2f} tokens/s; end to end {min(r[k + '_total_times']):.3f} s, load {min(r[k + '_load_times']):.3f} s), "
          f"dlm/pytorch throughput {rate['dlm', k] / rate['pytorch', k]:.2f}")
    same = [a == b for a, b in zip(p[k + "_ids"], r[k + "_ids"])]
    first = next((i for i, s in enumerate(same) if not s), None)
    print(f"  {k} generated ids identical: {sum(same)}/{len(same)} tokens"
          + ("" if first is None else f" (first difference at generated position {first})")
          + ("" if k == "f32" else " (not expected for bf16)"))
best = lambda who: max(rate[who, k] for k in dtypes)  # noqa: E731
print(f"  dlm best / pytorch best throughput: {best('dlm') / best('pytorch'):.2f}")
PY
    done
fi
