#!/usr/bin/env sh
# Issue 18's language-modelling comparison on the GPU machine's CPU cores: Mamba-3 (SISO, MIMO),
# Mamba-2 and Mamba-1 at about equal parameters (~450K: d_model 128 / 120, 4 layers, d_state 16,
# vocabulary 256 bytes) on the Brown corpus, each for the same training time, one process per mixer
# and seed on its own core (`tasks lm` alternates mixers when they share a process; here each has a
# core to itself). Results: <out>/brown-<mixer>-s<seed>.json (format mamba-ts-lm-run/1).
#
#   sh scripts/brown-lm-device.sh <out> [seconds=300] [seeds="0 1"]
set -eu
cd "$(dirname "$0")/.."
out="${1:?usage: sh scripts/brown-lm-device.sh <out> [seconds] [seeds]}"
seconds="${2:-300}"
seeds="${3:-0 1}"
mkdir -p "$out"
for seed in $seeds; do
  for m in mamba3:128 mamba3-mimo:120 mamba2:128 mamba:120; do
    name=$(echo "$m" | cut -d: -f1)
    node dist/src/cli/main.js tasks lm --mixers "$m" --seconds "$seconds" --slice 30 --layers 4 --seed "$seed" \
      --quiet --out "$out/brown-$name-s$seed.json" > "$out/brown-$name-s$seed.log" 2>&1 &
  done
done
wait
for f in "$out"/brown-*.json; do
  node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1]));for(const x of r.runs)console.log(x.mixer,x.model.dModel,x.parameters,x.steps,x.trainSeconds.toFixed(0),x.validBitsPerByte.toFixed(4))' "$f"
done
