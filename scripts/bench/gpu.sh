#!/usr/bin/env bash
# The GPU-machine check, in two halves, for a machine lent with a GPU but no Rust toolchain
# (../shared/notes/GPU.md):
#   bash scripts/bench/gpu.sh bundle   here: builds with `--features cuda` (scripts/build-cuda.sh)
#                                      the dlm binary, the benchmark examples and the golden and
#                                      kernel test binaries, and packs them, the XLM-R tokenizer
#                                      and PROMPTS IWSLT14 rows into .gpu/ (git-ignored; carry it)
#   bash scripts/bench/gpu.sh run      there, from the repository root: prints the machine (CPU
#                                      flags, GPU), runs the kernel tests (AMX where the CPU has
#                                      it), the golden tests on the CPU and on CUDA, then the
#                                      benchmarks against PyTorch in one run each: the GEMMs, the
#                                      forward and the training step on the CPU, and forward,
#                                      training step and sampling on CUDA. Everything also goes
#                                      to $OUT/gpu.log when OUT is set.
# Each step has a time limit, and a failing step does not stop the ones after it.
# Env (run): THREADS (CPU threads for both sides, default nproc), REPEATS (default 3).
set -uo pipefail
cd "$(dirname "$0")/../.."
here=$PWD
case "${1:-}" in
bundle)
    set -e
    data=${DATA:-../shared/data/eval/iwslt14/0-shot/validation/deen.jsonl}
    tokenizer=${TOKENIZER:-.cache/models/xlmr-tokenizer/tokenizer.json}
    rm -rf .gpu && mkdir -p .gpu/bin
    features=dlm-models/cuda,dlm-diffusion/cuda,dlm-train/cuda,dlm-cli/cuda
    build=(-p dlm-cli --bin dlm -p dlm-models --example forward_bench --example gemm_bench
        -p dlm-train --example train_bench -p dlm-diffusion --example sample_bench)
    tests=(-p dlm-models --lib --test golden_tiny -p dlm-diffusion --test golden --test gradients)
    bash scripts/build-cuda.sh --exec cargo build --release --features "$features" "${build[@]}"
    bash scripts/build-cuda.sh --exec cargo test --release --no-run --features dlm-models/cuda,dlm-diffusion/cuda "${tests[@]}" \
        --message-format=json-render-diagnostics > .gpu/tests.json
    for b in dlm examples/forward_bench examples/gemm_bench examples/train_bench examples/sample_bench; do
        strip -o ".gpu/bin/$(basename "$b")" "target/cuda/release/$b"
    done
    # test binaries under their target names (dlm_models for the library's unit tests)
    python3 - .gpu/tests.json <<'PY'
import json, subprocess, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        subprocess.run(["strip", "-o", f".gpu/bin/test-{m['target']['name']}", m["executable"]], check=True)
PY
    rm .gpu/tests.json
    pwd > .gpu/built-at # the test binaries find their fixtures under this path
    head -n "${PROMPTS:-16}" "$data" > .gpu/deen.jsonl
    cp "$tokenizer" .gpu/tokenizer.json
    tar -C .gpu -cf - bin tokenizer.json | xz -9e --lzma2=dict=256MiB -T1 > .gpu/bundle.tar.xz
    rm -rf .gpu/bin .gpu/tokenizer.json
    ls -l .gpu
    ;;
run)
    [ -z "${OUT:-}" ] || exec > >(tee "$OUT/gpu.log") 2>&1
    work=${GPU_WORK:-/tmp/dlm-gpu}
    mkdir -p "$work" && tar -C "$work" -xJf .gpu/bundle.tar.xz || exit 1
    cp .gpu/deen.jsonl "$work/"
    # The test binaries find their fixtures at the path they were built at.
    built=$(cat .gpu/built-at)
    if [ "$built" != "$here" ] && [ ! -e "$built" ]; then
        mkdir -p "$(dirname "$built")" && ln -s "$here" "$built"
    fi
    site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
    for lib in libcublas.so.13 libcurand.so.10 libcudart.so.13 libnvrtc.so.13; do
        dir=$(dirname "$(find "$site" -name "$lib*" | head -1)")
        export LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    done
    threads=${THREADS:-$(nproc)}
    export THREADS=$threads DLM_NUM_THREADS=$threads RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
    export BIN=$work/bin PYTHON=python3 REPEATS=${REPEATS:-3}
    step() { # step SECONDS NAME COMMAND...
        local limit=$1 name=$2 t0=$SECONDS rc
        shift 2
        echo "=== $name"
        timeout "$limit" "$@"
        rc=$?
        echo "=== $name: rc $rc in $((SECONDS - t0)) s"
    }
    step 20 machine bash -c 'bash scripts/bench/machine.sh; nvidia-smi -L; lscpu | grep -E "^(Model name|Socket|Core|Thread|NUMA node\(s\))"'
    step 20 "dlm inspect --system" "$BIN/dlm" inspect --system
    step 90 "kernel tests (CPU; AMX where present)" "$BIN/test-dlm_models" kernels
    for device in cpu cuda; do
        for t in golden_tiny golden gradients; do
            step 90 "golden $t on $device" env DLM_TEST_DEVICE=$device "$BIN/test-$t"
        done
    done
    step 60 "GEMMs, CPU" bash scripts/bench/gemm.sh
    step 90 "forward, CPU" bash scripts/bench/forward.sh
    step 120 "training step, CPU" bash scripts/bench/train.sh
    export DEVICE=cuda
    step 60 "forward, CUDA" env REPEATS=20 bash scripts/bench/forward.sh
    step 60 "training step, CUDA" env REPEATS=10 bash scripts/bench/train.sh
    step 150 "sampling, CUDA" env DATA="$work/deen.jsonl" TOKENIZER="$work/tokenizer.json" bash scripts/bench/sample.sh
    ;;
*)
    echo "usage: bash scripts/bench/gpu.sh bundle|run" >&2
    exit 2
    ;;
esac
