#!/usr/bin/env bash
# The Mamba paper's synthetic tasks at the paper's settings on the GPU (WebGPU through Dawn), split over
# several device calls of at most ~9 minutes: every run trains with --time-limit and keeps its model and
# optimiser in a --checkpoint, so running the script again (with the previous call's files) continues
# each run on the same curve (test/webgpu/tasks-resume.test.ts) until its results JSON exists.
#
#   source .device/setup.sh && bash bench/tasks-gpu.sh "$OUT" [previous-out]
#
# OUT: where this call writes (results JSON <run>.json, checkpoints ckpt/<run>.safetensors, logs
# <run>.log, report.md); on the device machine it starts empty, so pass the folder the last call's
# files came back in as `previous-out` (copied into OUT first). A run whose JSON is in OUT is done and
# skipped; the script stops starting runs when its time budget is spent and says which are pending.
#
# Runs (RUNS, in order; default all of these, each call giving every unfinished run a share of its time):
#   sc-s6, sc-mamba   selective copying, Table 1: length 4096, 16 data tokens, vocab 16, 2 layers,
#                     d_model 64 (--paper), batch 64, lr 1e-4 (docs/experiments.md), SC_STEPS steps
#   ih-mamba          induction heads, Table 2: trained at 256 (--paper) until a held-out check is exact
#                     (or IH_STEPS), tested at 2^6..2^12; then ih-mamba-L13-16 (2^13..2^16), ih-mamba-L17
#                     .. ih-mamba-L20, one length range per run, from the same checkpoint (evaluation only)
#   ih-attention      the same for attention (RoPE), tested to 2^ATTN_MAX_LOG (its evaluation is quadratic)
#   sc-s4d, sc-h3, sc-hyena, sc-mamba-s4d, sc-mamba-hyena   the rest of Table 1
#   ih-h3, ih-hyena   Table 2's H3 and Hyena rows (Hyena evaluates in one parallel pass: its FFT scratch,
#                     b·e·n complex numbers at n = 2 × the length, bounds the length it reaches)
#   sc-<mixer>, ih-<mixer> for any other mixer WebGPU trains (every task mixer, mamba3 and mamba3-mimo included)
#
# Environment: BUDGET (seconds of this call, default 500), EVAL_RESERVE (seconds kept for a run's
# final evaluation, default 60), SLICE (most training seconds per run and call; default: the budget
# shared among the unfinished runs, at least 60), SC_STEPS (400000), SC_BATCH (64), IH_STEPS (5000), IH_BATCH (16),
# ATTN_MAX_LOG (14), SIZE=tiny (a few steps of a tiny model: checks the script end to end; its numbers
# mean nothing), BACKEND (webgpu).
set -o pipefail
out=${1:?usage: bash bench/tasks-gpu.sh <out-dir> [previous-out-dir]}
prev=${2:-}
mkdir -p "$out/ckpt"
if [ -n "$prev" ] && [ -d "$prev" ] && [ "$(cd "$prev" && pwd)" != "$(cd "$out" && pwd)" ]; then
  cp -r "$prev"/. "$out"/
  chmod -R u+w "$out"
fi
budget=${BUDGET:-500}
reserve=${EVAL_RESERVE:-60}
backend=${BACKEND:-webgpu}
start=$(date +%s)
deadline=$((start + budget))
main=dist/src/cli/main.js
[ -f "$main" ] || { echo "no $main: run from a directory holding dist/ (npm run build)" >&2; exit 1; }
command -v nvidia-smi > /dev/null &&
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/gpu.txt" 2> /dev/null

if [ "${SIZE:-paper}" = tiny ]; then
  SC=(--seq-len 24 --count 4 --vocab 8 --d-model 8 --layers 1 --d-state 4 --steps "${SC_STEPS:-4}" --batch 4
    --eval-examples 8 --eval-every 2)
  IH=(--seq-len 8 --d-model 8 --layers 1 --d-state 4 --steps "${IH_STEPS:-4}" --batch 4 --eval-examples 8
    --eval-every 2 --length-examples 4)
  ih_lengths=(2^3..2^4 2^5..2^6 2^7)
  attn_max=6
else
  SC=(--paper --steps "${SC_STEPS:-400000}" --batch "${SC_BATCH:-64}" --lr 1e-4 --warmup 1 --eval-every 1000
    --eval-examples 512)
  IH=(--paper --steps "${IH_STEPS:-5000}" --batch "${IH_BATCH:-16}" --stop-accuracy 1 --eval-every 250
    --eval-examples 256 --length-examples 16)
  ih_lengths=(2^6..2^12 2^13..2^16 2^17 2^18 2^19 2^20)
  attn_max=${ATTN_MAX_LOG:-14}
fi

runs=${RUNS:-sc-s6 sc-mamba sc-s4d sc-h3 sc-hyena sc-mamba-s4d sc-mamba-hyena ih-mamba ih-attention ih-h3 ih-hyena}
# Round robin: each unfinished run trains for at most its share of this call (SLICE seconds, default
# the budget over the unfinished runs, at least 60), and each call starts one run further down the list
# (the count of calls is kept in OUT/calls), so every curve advances.
calls=$(cat "$out/calls" 2> /dev/null || echo 0)
echo $((calls + 1)) > "$out/calls"
read -r -a list <<< "$runs"
shift_by=$((calls % ${#list[@]}))
runs="${list[*]:shift_by} ${list[*]:0:shift_by}"
unfinished=0
for r in $runs; do [ -f "$out/$r.json" ] || unfinished=$((unfinished + 1)); done
slice=${SLICE:-$(((budget - reserve) / (unfinished > 0 ? unfinished : 1)))}
((slice < 60)) && [ -z "${SLICE:-}" ] && slice=60

pending=()
done_runs=()
failed=()
# run <name> <checkpoint name> <tasks run arguments...>
run() {
  local name=$1 ck=$2
  shift 2
  local json="$out/$name.json"
  if [ -f "$json" ]; then
    done_runs+=("$name")
    return
  fi
  local now left
  now=$(date +%s)
  left=$((deadline - now - reserve))
  if ((left < 20)); then
    pending+=("$name")
    return
  fi
  ((left > slice)) && left=$slice
  echo "== $name ($(date -u +%H:%M:%S), ${left}s of training time left in this call)" | tee -a "$out/$name.log"
  timeout --signal=INT $((deadline - now)) node "$main" tasks run "$@" --backend "$backend" \
    --checkpoint "$out/ckpt/$ck.safetensors" --time-limit "$left" --out "$json" 2>&1 |
    grep -v XDG_RUNTIME | tee -a "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  if [ -f "$json" ]; then
    done_runs+=("$name")
  elif [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$rc" -eq 130 ]; then
    pending+=("$name") # stopped by the time limit (or the evaluation ran out of time): rerun to continue
  else
    failed+=("$name (exit $rc, see $name.log)")
  fi
}

# the lengths of one range (2^a..2^b or 2^a) as a list of exponents
exponents() {
  local r=${1//2^/}
  if [[ $r == *..* ]]; then seq "${r%..*}" "${r#*..}"; else echo "$r"; fi
}

for r in $runs; do
  task=${r%%-*}
  mixer=${r#*-}
  case $task in
    sc) run "$r" "$r" selective-copying --mixer "$mixer" "${SC[@]}" ;;
    ih)
      for range in "${ih_lengths[@]}"; do
        hi=$(exponents "$range" | tail -1)
        lo=$(exponents "$range" | head -1)
        [ "$mixer" = attention ] && ((lo > attn_max)) && continue
        [ "$mixer" = attention ] && ((hi > attn_max)) && range="2^$lo..2^$attn_max"
        name=$r # later ranges: <run>-L<lo>-<hi> (exponents; file names of plain characters)
        [ "$range" = "${ih_lengths[0]}" ] || name="$r-L$lo$([ "$hi" = "$lo" ] || echo "-$hi")"
        run "$name" "$r" induction-heads --mixer "$mixer" "${IH[@]}" --eval-lengths "$range"
        # the longer lengths evaluate the trained model: not before training is done
        [ -f "$out/$name.json" ] || break
      done
      ;;
    *) failed+=("$r (unknown run: sc-<mixer> or ih-<mixer>)") ;;
  esac
done

node "$main" tasks report --in "$out" --out "$out/report.md" > /dev/null 2>&1 || true
echo
echo "done: ${done_runs[*]:-none}"
echo "pending (run the script again with this call's files as previous-out): ${pending[*]:-none}"
[ ${#failed[@]} -eq 0 ] || echo "failed: ${failed[*]}"
