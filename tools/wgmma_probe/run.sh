#!/bin/bash
# Builds and runs probe.cu with nvcc (sm_90a) on the kernels' own helpers (common.cuh + lightning.cu), then prints
# ptxas's register and spill figures for lightning_wgmma and lightning_pipe. Needs an sm_90 GPU and the CUDA toolkit.
set -e
here=$(cd "$(dirname "$0")" && pwd); k=$here/../../src/MiniMaxSharp.Cuda/Kernels; out=$(mktemp -d)
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
cat "$k/common.cuh" "$k/lightning.cu" "$here/probe.cu" > "$out/probe.cu"
$nvcc -std=c++17 -arch=sm_90a -o "$out/probe" "$out/probe.cu"
"$out/probe" || true
cat "$k/common.cuh" "$k/lightning.cu" > "$out/lightning.cu"
$nvcc -std=c++17 -arch=sm_90a -cubin -Xptxas -v -o "$out/lightning.cubin" "$out/lightning.cu" 2>&1 | grep -A2 -E "lightning_(wgmma|pipe)" | grep -E "Compiling|registers|spill" || true
