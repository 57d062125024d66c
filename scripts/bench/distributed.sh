#!/usr/bin/env bash
# Data-parallel scaling on one machine: the same run (same data, same global batch) on 1
# rank with train.accumulation=2 and on 2 MPI ranks with accumulation=1 (ZeRO-1, and
# replicated optimizer state). Prints per configuration: median tokens/s, median
# communication seconds per update (metrics.jsonl's comm_s) and optimizer state per rank.
# Run it on a quiet machine (timing); needs mpirun (Debian: openmpi-bin libopenmpi-dev).
#   CONFIG=configs/tiny-cpu.toml STEPS=30 bash scripts/bench/distributed.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
config=${CONFIG:-configs/tiny-cpu.toml}
steps=${STEPS:-30}
out=${BENCH_DIR:-/tmp/dlm-bench-distributed}
cargo build -q --release -p dlm-cli --features mpi
dlm=target/release/dlm
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--config "$config" --set "train.max_steps=$steps" --set train.save_interval=100000
        --set train.validate_interval=0 --set train.plot=false --set train.progress=false)
rm -rf "$out"; mkdir -p "$out"
# One process; its optimizer memory is the unsharded figure.
$dlm train "${common[@]}" --out "$out/ranks1" --set train.accumulation=2 2> "$out/ranks1.log"
for zero in true false; do
  mpirun -np 2 --oversubscribe --bind-to none $dlm train "${common[@]}" --out "$out/ranks2-zero-$zero" \
    --set train.accumulation=1 --set "distributed.zero=$zero" 2> "$out/ranks2-zero-$zero.log"
done
python3 - "$out" <<'PY'
import json, re, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
def median(xs): return statistics.median(xs) if xs else float("nan")
for run in ["ranks1", "ranks2-zero-true", "ranks2-zero-false"]:
    recs = [json.loads(l) for l in (out / run / "metrics.jsonl").read_text().splitlines()]
    recs = [r for r in recs if r["kind"] == "train"][2:]  # skip warm-up updates
    log = (out / f"{run}.log").read_text()
    m = re.search(r"optimizer state per rank: \[([^\]]*)\] MiB", log)
    per_rank = m.group(1) if m else "n/a"
    print(json.dumps({
        "run": run,
        "tokens_per_s": round(median([r["tokens_per_s"] for r in recs]), 1),
        "comm_s_per_update": round(median([r.get("comm_s", 0.0) for r in recs]), 4),
        "step_s": round(median([r["tokens"] / r["tokens_per_s"] for r in recs]), 4),
        "optimizer_mib_per_rank": per_rank,
    }))
PY
