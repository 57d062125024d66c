#!/usr/bin/env bash
# Prints the machine a benchmark runs on: CPU model, the vector/matrix features that pick
# dlm's kernels (AMX, AVX512-BF16, AVX-512, AVX2), cores, and the load average. Source it
# or run it before and after a measurement; a figure taken at load above ~1 per 2 cores is
# not a figure.
model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { grep -qw "$1" <<< "$flags" && echo yes || echo no; }
echo "cpu: $model; cores: $(nproc); amx_bf16: $(has amx_bf16); amx_tile: $(has amx_tile); avx512_bf16: $(has avx512_bf16); avx512f: $(has avx512f); avx2: $(has avx2)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) ($(date -u +%H:%M:%SZ))"
