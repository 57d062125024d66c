#!/usr/bin/env bash
# Forward throughput, dlm vs PyTorch, BERT-base shape (12x768), batch 8 x 128, MLM logits,
# same weights, same machine, one run. Prints the machine and load before and after, both
# JSON lines and the ratios. Run it on a quiet machine (nothing else building or testing).
# Needs a Python with torch + transformers: PYTHON=/path/to/python (default python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${BENCH_DIR:-/tmp/dlm-bench-bert-base}
repeats=${REPEATS:-5}
[ -n "${BIN:-}" ] || bash scripts/bench/build.sh # before measuring (BIN: prebuilt examples)
bash scripts/bench/machine.sh
# ROUNDS > 1 alternates the two sides (PyTorch, dlm, PyTorch, ...) and keeps each side's
# best round: this VM's speed drifts by ±15% over minutes, and alternating spreads the
# drift over both sides instead of charging it to whichever ran second.
py=(); rs=()
for _ in $(seq "${ROUNDS:-1}"); do
    py+=("$(${PYTHON:-python3} scripts/bench/forward_torch.py "$dir" "$repeats" | tail -1)")
    rs+=("$(${BIN:-target/release/examples}/forward_bench "$dir" "$repeats")")
done
bash scripts/bench/machine.sh | tail -1
printf '%s\n' "${py[@]}" "${rs[@]}"
python3 scripts/bench/ratios.py s "${#py[@]}" "${py[@]}" "${rs[@]}"
