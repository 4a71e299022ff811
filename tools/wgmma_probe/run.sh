#!/bin/bash
# Builds and runs probe.cu with nvcc (sm_90a) on the kernels' own helpers (common.cuh + lightning.cu), then prints
# ptxas's register and spill figures for lightning_wgmma and lightning_pipe. Needs an sm_90 GPU and the CUDA toolkit.
set -e
here=$(cd "$(dirname "$0")" && pwd); k=$here/../../src/MiniMaxSharp.Cuda/Kernels; out=$(mktemp -d)
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
cat "$k/common.cuh" "$k/lightning.cu" "$here/probe.cu" > "$out/probe.cu"
$nvcc -std=c++17 -gencode arch=compute_90a,code=sm_90a -DWGMMA_PROBE -o "$out/probe" "$out/probe.cu"
"$out/probe" || true
cat "$k/common.cuh" "$k/lightning.cu" > "$out/lightning.cu"
$nvcc -std=c++17 -gencode arch=compute_90a,code=sm_90a -DWGMMA_PROBE -cubin -Xptxas -v -o "$out/lightning.cubin" "$out/lightning.cu" 2>&1 | grep -v "^$" | grep -B1 -A4 -E "lightning_(wgmma|pipe)|wgmma" || true
