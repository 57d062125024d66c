#!/usr/bin/env bash
# The Linear products of a BERT-base forward (8 x 128 tokens: x [1024, k] · wᵀ, w [n, k]),
# f32 and bf16, GFLOP/s: dlm's kernels (`kernels::matmul`), candle's matmul, in f32 the
# same product with w column-major (what an f32 inference model runs, `load_linear`), and
# PyTorch's matmul, in one run. Tells whether a gap to PyTorch is in the GEMMs
# or around them. Run it on a quiet machine.
# Needs a Python with torch: PYTHON=/path/to/python (default python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
repeats=${REPEATS:-5}
[ -n "${BIN:-}" ] || bash scripts/bench/build.sh # before measuring (BIN: prebuilt examples)
bash scripts/bench/machine.sh
${PYTHON:-python3} - "$repeats" <<'PY'
import json, os, sys, time, torch
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
repeats = int(sys.argv[1])
for (m, k, n) in [(1024, 768, 768), (1024, 768, 3072), (1024, 3072, 768), (1024, 768, 30522)]:
    x, w = torch.randn(m, k), torch.randn(n, k) * 0.05
    for name, dt in (("F32", torch.float32), ("BF16", torch.bfloat16)):
        a, b = x.to(dt), w.to(dt)
        a @ b.t()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter(); a @ b.t(); best = min(best, time.perf_counter() - t)
        print(json.dumps({"m": m, "k": k, "n": n, "dtype": name, "pytorch_gflops": round(2 * m * k * n / best / 1e9, 1)}))
PY
${BIN:-target/release/examples}/gemm_bench "$repeats"
bash scripts/bench/machine.sh | tail -1
