#!/usr/bin/env bash
# Fuzzes every target in fuzz/ for SECONDS each (default 60), one after another, and prints
# the executions each reached (libFuzzer's final `#N DONE` line). docs/reliability.md.
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 3600       # an hour per target
#   FUZZ_TARGETS="server_request chat_template" scripts/fuzz.sh 600
#   FUZZ_RUNS=1000000 scripts/fuzz.sh 3600   # each until 10^6 executions (or an hour)
#
# What works on this machine's single stable toolchain (rustc 1.95): cargo-fuzz needs
# nightly flags (-Zsanitizer, -Cpasses=sancov...), which RUSTC_BOOTSTRAP=1 unlocks on
# stable; the default AddressSanitizer build works that way. FUZZ_SANITIZER=none
# (`cargo fuzz run -s none`) is the fallback where the sanitizer runtime does not link;
# it also runs about twice as many executions per second.
#
# One fuzzer at a time, one process each (-jobs=1 -workers=1): libFuzzer then runs the
# fuzzer in a child whose output goes to fuzz-0.log, kept as fuzz/logs/<target>.log.
# New inputs go to fuzz/corpus-work/<target>/ (ignored by git); fuzz/corpus/<target>/ holds
# the committed seeds and is only read. Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
secs="${1:-60}"
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
san="${FUZZ_SANITIZER:-address}"
runs="${FUZZ_RUNS:+-runs=$FUZZ_RUNS}"
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
cargo fuzz build -s "$san" >&2
mkdir -p fuzz/logs
summary=()
for t in $targets; do
    mkdir -p "fuzz/corpus-work/$t"
    rm -f fuzz-0.log
    echo "== $t: ${secs} s" >&2
    status=0
    cargo fuzz run -s "$san" "$t" "fuzz/corpus-work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" $runs -jobs=1 -workers=1 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >&2 || status=$?
    if [ -f fuzz-0.log ]; then mv fuzz-0.log "fuzz/logs/$t.log"; fi
    done_line="$(grep -a 'DONE' "fuzz/logs/$t.log" 2>/dev/null | tail -n 1 || true)"
    execs="$(grep -a 'stat::number_of_executed_units' "fuzz/logs/$t.log" 2>/dev/null | tail -n 1 | awk '{print $2}' || true)"
    if grep -aq 'ERROR: libFuzzer\|panicked at\|==ERROR' "fuzz/logs/$t.log" 2>/dev/null; then
        verdict="CRASH (see fuzz/logs/$t.log and fuzz/artifacts/$t/)"
    elif [ "$status" -ne 0 ]; then
        verdict="exit $status (see fuzz/logs/$t.log)"
    else
        verdict="ok"
    fi
    summary+=("$(printf '%-18s %12s execs  %s  | %s' "$t" "${execs:-?}" "$verdict" "${done_line:-no DONE line}")")
done
echo
echo "target             executions"
printf '%s\n' "${summary[@]}"
