#!/usr/bin/env sh
# The Mamba-3 experiments of issue 18 at a scale this repository's 2-core machine cannot reach: MQAR by
# state size (Mamba-3 at d_state 16/32/64 against Mamba-2 at 16/32/64/128 and Mamba-1, one width) and
# longer state-tracking runs, one run per CPU core (the engine trains on the CPU; the GPU is not used).
# Resumable: each run keeps a checkpoint in out/mamba3-tasks/ and stops after <seconds> of training in
# this call; call the script again until it prints "all done" (the slowest, Mamba-3 MQAR at d_state 64,
# ran at 0.9 steps/s on one core of the 2-core development machine: 2000 steps are 4-5 calls of the
# default 520 s on a similar core). Results: <results>/*.json, then
#   node dist/src/cli/main.js tasks report --in <results> --out docs/experiments/mamba3/device.md
#
#   sh scripts/mamba3-tasks-device.sh [seconds=520] [results=bench/results/tasks-mamba3/device]
set -eu
cd "$(dirname "$0")/.."
limit="${1:-520}"
results="${2:-bench/results/tasks-mamba3/device}"
ckpt=out/mamba3-tasks
mkdir -p "$ckpt" "$results"
[ -f dist/src/cli/main.js ] || npm run build
mq="--d-model 64 --layers 2 --heads 4 --seq-len 64 --count 8 --vocab 64 --batch 32 --steps 2000 --lr 3e-3 --eval-every 250 --eval-examples 256"
st="--d-model 32 --layers 2 --heads 4 --d-state 16 --batch 16 --lr 3e-3 --eval-every 250 --eval-examples 256 --stop-accuracy 0.99"
run() { # name, then the task run's arguments
  name=$1
  shift
  if [ -f "$results/$name.json" ]; then return 0; fi
  node dist/src/cli/main.js tasks run "$@" --checkpoint "$ckpt/$name.safetensors" --time-limit "$limit" \
    --out "$ckpt/$name.json" > "$ckpt/$name.log" 2>&1 || { echo "$name failed: see $ckpt/$name.log"; return 0; }
  # a run stopped by the time limit writes no result yet (only its checkpoint)
  if [ -f "$ckpt/$name.json" ]; then cp "$ckpt/$name.json" "$results/$name.json" && echo "$name: done"; else
    echo "$name: stopped by the time limit ($(grep -o 'stopped at step [0-9]* of [0-9]*' "$ckpt/$name.log" | tail -n 1))"; fi
}
run mqar-mamba3-n16 mqar --mixer mamba3 --d-state 16 $mq &
run mqar-mamba3-n32 mqar --mixer mamba3 --d-state 32 $mq &
run mqar-mamba3-n64 mqar --mixer mamba3 --d-state 64 $mq &
run mqar-mamba2-n16 mqar --mixer mamba2 --d-state 16 $mq &
run mqar-mamba2-n32 mqar --mixer mamba2 --d-state 32 $mq &
run mqar-mamba2-n64 mqar --mixer mamba2 --d-state 64 $mq &
run mqar-mamba2-n128 mqar --mixer mamba2 --d-state 128 $mq &
run mqar-mamba-n16 mqar --mixer mamba --d-state 16 $mq &
run parity128-mamba3 parity --mixer mamba3 --seq-len 128 --steps 6000 $st &
run parity128-mamba2 parity --mixer mamba2 --seq-len 128 --steps 6000 $st &
run parity128-mamba parity --mixer mamba --d-model 28 --seq-len 128 --steps 6000 $st &
run modadd5-128-mamba3 modular-addition --mixer mamba3 --count 5 --vocab 5 --seq-len 128 --steps 6000 $st &
run modadd5-128-mamba2 modular-addition --mixer mamba2 --count 5 --vocab 5 --seq-len 128 --steps 6000 $st &
run modadd5-128-mamba modular-addition --mixer mamba --d-model 28 --count 5 --vocab 5 --seq-len 128 --steps 6000 $st &
wait
n=$(ls "$results"/*.json 2>/dev/null | wc -l)
if [ "$n" -ge 14 ]; then echo "all done"; else echo "$n of 14 runs finished: call again"; fi
