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
py=$(${PYTHON:-python3} scripts/bench/forward_torch.py "$dir" "$repeats" | tail -1)
rs=$(${BIN:-target/release/examples}/forward_bench "$dir" "$repeats")
bash scripts/bench/machine.sh | tail -1
echo "$py"; echo "$rs"
python3 - "$py" "$rs" <<'PY'
import json, sys
p, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for k in ("f32_s", "bf16_s"):
    print(f"{k[:-2]}: pytorch {p[k]:.3f} s, dlm {r[k]:.3f} s, dlm/pytorch time ratio {r[k]/p[k]:.2f}")
print(f"dlm best / pytorch best (time): {min(r['f32_s'], r['bf16_s'])/min(p['f32_s'], p['bf16_s']):.2f}")
PY
