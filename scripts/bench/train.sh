#!/usr/bin/env bash
# Training-step throughput, dlm vs PyTorch, BERT-base shape (12x768), batch B x (P + R)
# = 8 x (64 + 64) doubled by the coupled masking (SPEC §3), projection only at masked
# positions, AdamW; same machine, same weights, one run. Prints the machine and load
# before and after, both JSON lines and the ratios. Run it on a quiet machine.
# Needs a Python with torch + transformers: PYTHON=/path/to/python (default python3).
# The model directory is the one forward.sh saves (created here if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${BENCH_DIR:-/tmp/dlm-bench-bert-base}
repeats=${REPEATS:-5}
shape=${SHAPE:-8 64 64}
[ -n "${BIN:-}" ] || bash scripts/bench/build.sh # before measuring (BIN: prebuilt examples)
[ -f "$dir/config.json" ] || ${PYTHON:-python3} scripts/bench/forward_torch.py "$dir" 1 > /dev/null
bash scripts/bench/machine.sh
# ROUNDS > 1 alternates the two sides (PyTorch, dlm, PyTorch, ...) and keeps each side's
# best round: this VM's speed drifts by ±15% over minutes, and alternating spreads the
# drift over both sides instead of charging it to whichever ran second.
py=(); rs=()
for _ in $(seq "${ROUNDS:-1}"); do
    # shellcheck disable=SC2086
    py+=("$(${PYTHON:-python3} scripts/bench/train_torch.py $shape "$repeats" | tail -1)")
    # shellcheck disable=SC2086
    rs+=("$(${BIN:-target/release/examples}/train_bench "$dir" $shape "$repeats")")
done
bash scripts/bench/machine.sh | tail -1
printf '%s\n' "${py[@]}" "${rs[@]}"
python3 scripts/bench/ratios.py s/step "${#py[@]}" "${py[@]}" "${rs[@]}"
