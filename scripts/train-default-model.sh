#!/usr/bin/env sh
# Trains the default model that `mamba-ts generate` uses without --model, and ships it into
# models/default (config, weights, tokenizer, loss curve, model card). Reproducible: the settings
# (models/default.config.json, seed included) fix the tokenizer, the initialisation and every batch.
# Resumable: run it again after an interruption and it continues from the last checkpoint.
#
#   sh scripts/train-default-model.sh [steps=4000] [config=models/default.config.json] [out=out/default]
set -eu
cd "$(dirname "$0")/.."
steps="${1:-4000}"
config="${2:-models/default.config.json}"
out="${3:-out/default}"
npm run build  # gen-wgsl + build-wasm + tsc (the CPU backend needs the generated kernels)
if [ -f "$out/trainer_state.json" ]; then
  node dist/src/cli/main.js train --resume --out "$out" --steps "$steps"
else
  node dist/src/cli/main.js train --data brown --config "$config" --steps "$steps" --out "$out"
fi
node scripts/ship-default-model.js "$out" --command "sh scripts/train-default-model.sh $steps $config"
