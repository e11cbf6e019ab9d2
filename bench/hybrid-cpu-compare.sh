#!/bin/bash
# Two builds of mamba-ts on bench/hybrid-cpu-profile.js in turn (base, head, base, head, ...), a fresh
# process each, so that a shared machine's drift falls on both alike; one JSON line per run on stdout,
# with the 1-minute load average. Summarise the medians and ratios with bench/hybrid-cpu-compare.py.
#
#   bench/hybrid-cpu-compare.sh <base checkout, built> <rounds> <model:layers:dtype:threads> ...
#   e.g. bench/hybrid-cpu-compare.sh /tmp/base 3 granite-4.0-h-1b:10:f32:1 falcon-h1-0.5b:9:f16:2 > runs.log
#
# The base checkout needs dist/bench/hybrid-cpu-profile.js: copy bench/hybrid-cpu-profile.ts and
# bench/cpu-op-timer.ts into it and build it (the bench uses only the public model and backend API).
set -euo pipefail
BASE=$1
ROUNDS=$2
shift 2
HEAD=$(cd "$(dirname "$0")/.." && pwd)
for r in $(seq 1 "$ROUNDS"); do
  for cfg in "$@"; do
    IFS=: read -r model layers dtype threads <<<"$cfg"
    for side in base head; do
      dir=$BASE
      [ "$side" = head ] && dir=$HEAD
      line=$(cd "$dir" && node dist/bench/hybrid-cpu-profile.js --model "$model" --layers "$layers" --dtype "$dtype" \
        --threads "$threads" --reps 1 --decode 16 --no-ops --json-only | tail -1)
      echo "round=$r side=$side cfg=$cfg load=$(cut -d' ' -f1 /proc/loadavg) $line"
    done
  done
done
