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
# shellcheck disable=SC2086
py=$(${PYTHON:-python3} scripts/bench/train_torch.py $shape "$repeats" | tail -1)
# shellcheck disable=SC2086
rs=$(${BIN:-target/release/examples}/train_bench "$dir" $shape "$repeats")
bash scripts/bench/machine.sh | tail -1
echo "$py"; echo "$rs"
python3 - "$py" "$rs" <<'PY'
import json, sys
p, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for k in ("f32_s", "bf16_s"):
    print(f"{k[:-2]}: pytorch {p[k]:.3f} s/step, dlm {r[k]:.3f} s/step, dlm/pytorch time ratio {r[k]/p[k]:.2f}")
best = min(r['f32_s'], r['bf16_s']) / min(p['f32_s'], p['bf16_s'])
print(f"dlm best / pytorch best (time): {best:.2f}")
PY
