#!/usr/bin/env bash
# All WebGPU benchmarks in one go, for the GPU machine (one H200 through Dawn/Vulkan); about 5 minutes.
# From a directory holding dist/ (npm run build), package.json and .device/ (bash ../shared/device/pack.sh):
#   source .device/setup.sh && bash bench/webgpu-h200.sh "$OUT"
# Writes webgpu-scan.json, webgpu-decode.json, webgpu-prefill.json and the logs into the given folder.
set -o pipefail
out=${1:-bench/results}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
run() { local name=$1; shift; node "$@" --out "$out" 2>&1 | grep -v XDG_RUNTIME | tee "$out/$name.log"; }
# scan: the default configuration first, then a sweep of chunking (threads) and workgroup size
run webgpu-scan dist/bench/webgpu-scan.js --threads 131072,65536,262144,524288 --wg 64,128 --reps 15
run webgpu-decode dist/bench/webgpu-decode.js --models 130m,1.4b --dtypes f32,bf16,f16 --seconds 2 --warmup 1
run webgpu-prefill dist/bench/webgpu-prefill.js --models 130m,1.4b --dtypes f32,bf16 --tokens 2048 --reps 5
node dist/bench/webgpu-report.js --dir "$out" | tee "$out/report.md"
