#!/usr/bin/env bash
# Builds dlm with `--features cuda` on a machine that has no GPU and no CUDA install (the
# recipe of ../shared/notes/GPU.md), for a GPU machine that has the driver but no Rust:
# - nvcc, the CUDA headers and the libraries to link against come from PyPI wheels
#   (CUDA 13.0: the GPU machine's driver is CUDA 13, and kernels compiled by a newer nvcc
#   would not load there), unpacked into $CUDA_TOOLKIT_DIR;
# - libcuda.so (the driver; no wheel ships it) is a stub generated from cuda.h, only to
#   link: at run time the GPU machine's real libcuda.so.1 is used;
# - there is no GPU to detect the architecture from: CUDA_COMPUTE_CAP (default 90, H100/H200).
# Not part of CI. Runs a release build into target/cuda (so the CPU build's cache is kept)
# and packs the stripped binary as target/cuda/dlm-cuda.tar.xz (small enough to carry).
# On the GPU machine: LD_LIBRARY_PATH must name libcublas.so.13, libcublasLt.so.13,
# libcurand.so.10, libnvrtc.so.13 (e.g. the nvidia/*/lib folders of a CUDA torch install).
#
# Usage: bash scripts/build-cuda.sh [--toolkit-only | --exec COMMAND... | cargo build arguments,
#        default: -p dlm-cli]   (--exec runs COMMAND in the CUDA build environment instead)
# (multi-GPU training: bash scripts/build-cuda.sh -p dlm-cli --features nccl; needs MPI too)
# Env: PYTHON (a python with pip, default python3), CUDA_TOOLKIT_DIR (default
# .cache/cuda-toolkit), CUDA_COMPUTE_CAP (default 90), CARGO_TARGET_DIR (default target/cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
toolkit=$(realpath -m "${CUDA_TOOLKIT_DIR:-.cache/cuda-toolkit}")
py=${PYTHON:-python3}
home=$toolkit/nvidia/cu13
wheels=(
    "nvidia-cuda-nvcc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*"
    "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-nvrtc==13.0.*" "nvidia-cublas==13.0.*" "nvidia-curand==10.4.0.*"
)
if [ ! -x "$home/bin/nvcc" ] || [ ! -f "$home/lib/libcuda.so" ]; then
    echo "build-cuda: fetching the CUDA 13.0 toolkit wheels into $toolkit" >&2
    mkdir -p "$toolkit/wheels"
    "$py" -m pip download -q --no-deps --only-binary=:all: -d "$toolkit/wheels" "${wheels[@]}"
    for w in "$toolkit"/wheels/*.whl; do
        "$py" -m zipfile -e "$w" "$toolkit"
    done
    chmod +x "$home"/bin/* "$home"/nvvm/bin/* 2>/dev/null || true
    # The linker wants unversioned names; the wheels ship only libX.so.N.
    for lib in "$home"/lib/lib*.so.*; do
        base=${lib%%.so.*}.so
        [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"
    done
    # Stub driver: every cu* entry point of cuda.h, each failing with
    # CUDA_ERROR_NO_DEVICE (100) should the stub ever be loaded instead of the driver.
    grep -oE '\bcu[A-Z][A-Za-z0-9_]*' "$home/include/cuda.h" | sort -u |
        sed 's/.*/int &(void) { return 100; }/' > "$toolkit/libcuda_stub.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$home/lib/libcuda.so" "$toolkit/libcuda_stub.c"
fi
# The `nccl` feature links libnccl: from the registry's nvidia-nccl-cu13 wheel, fetched only
# when the cargo arguments name that feature (on the GPU machines, libnccl.so.2 must be on
# LD_LIBRARY_PATH at run time too, e.g. from the same wheel).
if [[ " $* " == *nccl* ]] && [ ! -e "$home/lib/libnccl.so" ]; then
    echo "build-cuda: fetching NCCL (nvidia-nccl-cu13) for the nccl feature" >&2
    "$py" -m pip download -q --no-deps --only-binary=:all: -d "$toolkit/wheels" "nvidia-nccl-cu13==2.*"
    "$py" -m zipfile -e "$(ls "$toolkit"/wheels/nvidia_nccl_cu13-*.whl | tail -1)" "$toolkit"
    ln -sf ../../nccl/lib/libnccl.so.2 "$home/lib/libnccl.so"
fi
export CUDA_HOME=$home CUDA_PATH=$home CUDA_ROOT=$home
export PATH=$home/bin:$PATH
export LIBRARY_PATH=$home/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
export LD_LIBRARY_PATH=$home/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
nvcc --version | tail -2 >&2 # stderr: --exec commands may write machine-readable stdout
[ "${1:-}" != --toolkit-only ] || exit 0
if [ "${1:-}" = --exec ]; then
    shift
    exec "$@"
fi
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-p dlm-cli)
cargo build --release --features cuda "${args[@]}"
bin=$CARGO_TARGET_DIR/release/dlm
if [ -x "$bin" ]; then
    strip -o "$CARGO_TARGET_DIR/dlm" "$bin"
    tar -C "$CARGO_TARGET_DIR" -cJf "$CARGO_TARGET_DIR/dlm-cuda.tar.xz" dlm
    ls -l "$CARGO_TARGET_DIR/dlm-cuda.tar.xz"
fi
