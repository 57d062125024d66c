#!/usr/bin/env bash
# Builds every benchmark example in one cargo invocation, so that the three benchmarks
# share one feature resolution (building them one package at a time can resolve features
# differently and recompile candle). PROFILE=release (default) or dev.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --profile "${PROFILE:-release}" -p dlm-models --example forward_bench --example gemm_bench \
    -p dlm-train --example train_bench -p dlm-diffusion --example sample_bench
