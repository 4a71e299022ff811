#!/bin/bash
# One device call: every GPU check and benchmark of the CUDA and training issues, a short table last.
# The published CLI travels as .device/minimax.tgz and the tiny-hybrid fixture as .device/fixtures (see docs/cuda.md).
# usage (on the GPU machine, from the repository root): bash scripts/gpu-session.sh [quick]
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/mm
tar xzf .device/minimax.tgz -C /tmp/mm
M=/tmp/mm/minimax; F=.device/fixtures/tiny-hybrid
export MINIMAXSHARP_KERNEL_CACHE=/tmp/kcache
declare -A R
step() { local name=$1 limit=$2; shift 2; local t0=$(date +%s%N); echo "=== $name: $*" | tee -a "$OUT/log.txt"
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1; local rc=$?
  R[$name]="rc=$rc $(( ($(date +%s%N) - t0) / 1000000 )) ms"; tail -n "${TAILN:-25}" "$OUT/$name.txt"; }
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader
step verify 120 $M verify --backend cuda --fixtures .device/fixtures
step gradients 40 $M gradients --backend cuda --model $F --input .device/fixtures/batch.json --output /tmp/g.safetensors
step compare 20 python3 tools/compare_gradients.py /tmp/g.safetensors $F/seq100_grads.safetensors --bound 1e-2
step gradients_bf16 40 $M gradients --backend cuda --precision bf16 --model $F --input .device/fixtures/batch.json --output /tmp/g16.safetensors
step compare_bf16 20 python3 tools/compare_gradients.py /tmp/g16.safetensors $F/seq100_grads.safetensors --bound 1e-2
if [ "${1:-}" != quick ]; then
  step decode 80 $M bench --backend cuda --preset bench-1b --prompt-lengths 2048 --decode-context 4096 --decode-tokens 128 --decode-batch 64 --batch-context 512 --skip-machine-limits
  step decode_eager 50 env MINIMAXSHARP_CUDA_GRAPHS=0 $M bench --backend cuda --preset bench-1b --prompt-lengths 2048 --decode-context 4096 --decode-tokens 128 --skip-machine-limits
  step train_default 50 $M bench-train --backend cuda --config models/default --seq-len 512 --batch 8 --steps 5 --precision f32
  step train_default_bf16 50 $M bench-train --backend cuda --config models/default --seq-len 512 --batch 8 --steps 5 --precision bf16
  step train_1b 100 $M bench-train --backend cuda --config bench-1b --seq-len 2048 --batch 2 --steps 3 --precision f32 --profile
  step train_1b_bf16 100 $M bench-train --backend cuda --config bench-1b --seq-len 2048 --batch 2 --steps 3 --precision bf16 --profile
fi
echo; echo "| step | result |"; echo "| --- | --- |"; for k in "${!R[@]}"; do echo "| $k | ${R[$k]} |"; done
