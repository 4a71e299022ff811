#!/bin/bash
# Self-tests the emulated primitives (primitives_check.cpp), then runs the lightning prefill kernels (lightning_clusterN, lightning_wgmma,
# lightning_pipe and lightning_chunk) on the CPU through a thread-per-CUDA-thread emulation and compares them with a
# float64 recurrence. Needs g++ (C++20) and nothing from CUDA.
# usage: tools/kernel_emulator/run.sh [case number, 0 = all] [kernel name, e.g. lightning_wgmma or lightning_cluster8; default all]
#   (each case takes ~30 s per kernel on 2 cores; the cluster kernels run on case 8 only unless one is named)
set -e
here=$(cd "$(dirname "$0")" && pwd); kernels=$here/../../src/MiniMaxSharp.Cuda/Kernels; out=$(mktemp -d)
g++ -std=c++20 -O1 -pthread -w -I"$kernels" -I"$here" "$here/primitives_check.cpp" -o "$out/primitives_check"
"$out/primitives_check"
python3 "$here/make_kernels.py" "$kernels/lightning.cu" "$kernels/common.cuh" "$here" > "$out/kernels.inc"
g++ -std=c++20 -O1 -pthread -w -I"$out" -I"$here" "$here/lightning_check.cpp" -o "$out/lightning_check"
"$out/lightning_check" "${1:-0}" ${2:+"$2"}
