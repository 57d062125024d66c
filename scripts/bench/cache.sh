#!/usr/bin/env bash
# KV caches, dlm vs the authors' PyTorch code, in one run on the same CPU, weights and prompts:
#   1. LLaDA-shaped model (scripts/bench/llada_dream_models.py: 12 layers, vocabulary 126464,
#      random weights, .cache/bench/llada-bench, created on the first run, as llada.sh): one
#      prompt of 64 ids (llada.sh's), 256 generated tokens, block 32, temperature 0, batch 1.
#      Modes ALG/CACHE: ALG llada (`dlm generate --strategy llada --steps 256`; Fast-dLLM's loop
#      with threshold=None) or fast-dllm (`--strategy fast-dllm --threshold 0.9`; threshold=0.9),
#      CACHE none|prefix|dual (`--cache`; Fast-dLLM's generate, generate_with_prefix_cache,
#      generate_with_dual_cache from NVlabs/Fast-dLLM llada/generate.py @ 24cc59e, run by
#      cache_torch.py). Per mode and dtype: seconds, tokens/s, forward passes (NFE: Fast-dLLM's
#      own count; dlm: the canvases of --trajectory, see cache_dlm.py), generated tokens per
#      forward, dlm ÷ Fast-dLLM throughput and whether the generated ids are identical (f32:
#      they should be). Then dlm fast-dllm/dual ÷ dlm llada/none throughput (target ≥ 5) and dlm
#      ÷ Fast-dLLM with the dual cache (target ≥ 3).
#   2. XLM-R-base-shaped model (sample.sh's: random weights, the real XLM-R tokenizer, the first
#      16 IWSLT14 De→En prompts, oracle length, K = 50 (the paper decodes translation with 50
#      steps; XLMR_STEPS=10 for the validation setting), batch 8): dlm reparam-uncond with
#      --cache none, refresh:R and reuse:R (REFRESH) vs the released sampler (sample_torch.py);
#      tokens/s, ratios, and how many prompts' outputs equal the released sampler's and dlm
#      none's. Left out, with a note, while `dlm generate --help` does not mention refresh.
# dlm's time: part 1, `dlm generate` end to end minus a load-only run (llada_dlm.py's approach);
# part 2, `dlm eval`'s in-process generation_seconds (the ids from untimed `dlm generate` runs,
# one per prompt); see cache_dlm.py. Prints
# the machine and the load average before and after. Measure on a quiet machine: no build,
# test or other job beside it (the no-cache LLaDA runs alone take most of an hour on 2 cores).
# docs/caching.md "Benchmarks" has the details.
#
# Needs a Python with torch + transformers==4.49.0 + einops + safetensors + tokenizers (e.g.
# /work/pyref): PYTHON=/path/to/python (default python3), a git mirror of NVlabs/Fast-dLLM
# holding the pinned commit (FAST_DLLM_MIRROR; llada_dream_models.py also wants LLADA_MIRROR),
# and for part 2 the XLM-R tokenizer (bash scripts/fetch-models.sh) and the IWSLT14 data.
# Env, part 1: BENCH_DIR (model directory, default .cache/bench/llada-bench), PROMPT (64), GEN
# (256), STEPS (256), BLOCK (32), THRESHOLD (0.9), ALGS ("llada fast-dllm"), CACHES ("none
# prefix dual"), DTYPES (f32; f32,bf16 adds bf16 autocast / --dtype bf16), REPEATS (1: timed
# runs per mode, side and dtype; the best counts), NFE (separate: one extra untimed dlm run
# per mode and dtype with --trajectory; timed: the timed runs carry --trajectory; off).
# Part 2: XLMR_DIR (default /tmp/dlm-bench-xlmr-base, sample.sh's), DATA, TOKENIZER (as
# sample.sh), PROMPTS (16), XLMR_STEPS (50), XLMR_BATCH (8: both sides' batch), XLMR_REPEATS
# (3; the median counts, as sample.sh), XLMR_DTYPES (f32,bf16: dlm's; the released side
# always runs both), REFRESH ("8 16 reuse:4 reuse:8 reuse:16": R for refresh:R, or a whole cache name), EVAL_TASK (iwslt14-deen: dlm eval's --task).
# Part 2 at the defaults took 25 min with XLMR_REPEATS=1 XLMR_DTYPES=f32 on 2 cores (the
# released sampler alone 230 s in f32 and 152 s in bf16 per run).
# Both: SKIP (llada or reparam: leave that part out), THREADS (2: torch threads and dlm's thread
# pool), KEEP (a folder to keep the JSON lines in), PROFILE (cargo profile built when DLM is
# unset, default release), DLM (a prebuilt dlm binary: nothing is built; a missing one falls
# back to target/release/dlm, then target/debug/dlm).
# SMOKE=1: a functional check, no measurement: the 2-layer models (.cache/bench/llada-smoke,
# .cache/bench/xlmr-smoke: XLM-R vocabulary, width 64), prompt 16, 16 tokens, 16 steps, block
# 8, f32 and bf16; 2 prompts, K = 4, REFRESH "2".
set -euo pipefail
cd "$(dirname "$0")/../.."
smoke=${SMOKE:-0}
if [ "$smoke" != 0 ]; then
    dir=${BENCH_DIR:-.cache/bench/llada-smoke} xdir=${XLMR_DIR:-.cache/bench/xlmr-smoke}
    prompt=${PROMPT:-16} gen=${GEN:-16} steps=${STEPS:-16} block=${BLOCK:-8} dtypes=${DTYPES:-f32,bf16}
    prompts=${PROMPTS:-2} xsteps=${XLMR_STEPS:-4} xrepeats=${XLMR_REPEATS:-1} refresh=${REFRESH:-2}
else
    dir=${BENCH_DIR:-.cache/bench/llada-bench} xdir=${XLMR_DIR:-/tmp/dlm-bench-xlmr-base}
    prompt=${PROMPT:-64} gen=${GEN:-256} steps=${STEPS:-256} block=${BLOCK:-32} dtypes=${DTYPES:-f32}
    prompts=${PROMPTS:-16} xsteps=${XLMR_STEPS:-50} xrepeats=${XLMR_REPEATS:-3} refresh=${REFRESH:-8 16 reuse:4 reuse:8 reuse:16}
fi
repeats=${REPEATS:-1} algs=${ALGS:-llada fast-dllm} caches=${CACHES:-none prefix dual}
xbatch=${XLMR_BATCH:-8} xdtypes=${XLMR_DTYPES:-f32,bf16}
data=${DATA:-../shared/data/eval/iwslt14/0-shot/validation/deen.jsonl}
tokenizer=${TOKENIZER:-.cache/models/xlmr-tokenizer/tokenizer.json}
export THRESHOLD=${THRESHOLD:-0.9} NFE=${NFE:-separate}
py=${PYTHON:-python3}
export THREADS=${THREADS:-2}
export DLM_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS
part1=yes part2=yes
case ${SKIP:-} in
    "") ;; llada) part1=no ;; reparam) part2=no ;;
    *) echo "cache.sh: SKIP=llada or SKIP=reparam, not $SKIP" >&2; exit 1 ;;
esac

if [ -z "${DLM:-}" ]; then # before measuring
    cargo build -q --profile "${PROFILE:-release}" -p dlm-cli --bin dlm
    bindir=${PROFILE:-release}; [ "$bindir" != dev ] || bindir=debug
    dlm=target/$bindir/dlm
else
    dlm=$DLM
fi
for d in target/release/dlm target/debug/dlm; do [ -x "$dlm" ] || dlm=$d; done
[ -x "$dlm" ] || { echo "cache.sh: no dlm binary (DLM=...)" >&2; exit 1; }
help=$("$dlm" generate --help)
grep -q -- '--cache' <<< "$help" || { echo "cache.sh: $dlm generate has no --cache (an older build?)" >&2; exit 1; }
if [ $part2 = yes ] && ! grep -q 'refresh' <<< "$help"; then
    echo "note: $dlm generate --help does not mention --cache refresh:R yet: part 2 (reparam-uncond, XLM-R) is left out"
    part2=no
fi
if [ $part2 = yes ]; then
    for f in "$data" "$tokenizer"; do
        [ -f "$f" ] || { echo "note: $f is missing: part 2 (reparam-uncond, XLM-R) is left out"; part2=no; }
    done
fi
[ $part1 = yes ] || [ $part2 = yes ] || { echo "cache.sh: nothing left to run" >&2; exit 1; }
modes=()
for a in $algs; do for c in $caches; do modes+=("$a/$c"); done; done
modes=$(IFS=,; echo "${modes[*]}")
# An entry of REFRESH is R (refresh:R) or a whole cache name (reuse:R).
refresh_caches=none$(for r in $refresh; do case $r in *:*) printf ',%s' "$r" ;; *) printf ',refresh:%s' "$r" ;; esac; done)

if [ $part1 = yes ] && [ ! -f "$dir/config.json" ]; then
    "$py" scripts/bench/llada_dream_models.py --model llada --out "$dir" $([ "$smoke" = 0 ] || echo --smoke)
fi
out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$out"' EXIT

echo "dlm: $dlm, threads: $THREADS$([ "$smoke" = 0 ] || echo ', SMOKE: a functional check, not a measurement')"
bash scripts/bench/machine.sh
if [ $part1 = yes ]; then
    echo "part 1: $dir, modes $modes, dtypes $dtypes ..."
    "$py" scripts/bench/cache_torch.py "$dir" "$prompt" "$gen" "$steps" "$block" "$repeats" "$dtypes" "$modes" \
        | grep '^{' > "$out/llada-pytorch.jsonl"
    python3 scripts/bench/cache_dlm.py llada "$dlm" "$dir" "$out/llada-pytorch.jsonl" "$repeats" "$dtypes" \
        > "$out/llada-dlm.jsonl"
fi
if [ $part2 = yes ]; then
    echo "part 2: $xdir, --cache $refresh_caches, dtypes $xdtypes ..."
    # A smoke model is small (sample_torch.py reads these only when it creates the model).
    ( if [ "$smoke" != 0 ]; then export LAYERS=2 HIDDEN=64 HEADS=2 FFN=128; fi
      "$py" scripts/bench/sample_torch.py "$xdir" "$data" "$tokenizer" "$prompts" "$xbatch" "$xsteps" "$xrepeats" ) \
        | tail -1 > "$out/reparam-pytorch.json"
    python3 scripts/bench/cache_dlm.py reparam "$dlm" "$xdir" "$out/reparam-pytorch.json" "$xrepeats" "$xdtypes" \
        "$refresh_caches" "$data" "$xbatch" > "$out/reparam-dlm.jsonl"
fi
bash scripts/bench/machine.sh | tail -1

[ $part1 = no ] || python3 scripts/bench/cache_report.py llada "$out/llada-pytorch.jsonl" "$out/llada-dlm.jsonl"
[ $part2 = no ] || python3 scripts/bench/cache_report.py reparam "$out/reparam-pytorch.json" "$out/reparam-dlm.jsonl"
