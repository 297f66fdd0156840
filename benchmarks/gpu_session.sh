#!/usr/bin/env bash
# One lent-device session's checks in one call, in the order that answers the open questions
# first (issue 6: hopf_cole bf16 ≥ 5×). Each step runs under its own time limit; on a hang,
# faulthandler prints every thread's traceback (SIGABRT) instead of a silent timeout.
#
#   bash benchmarks/gpu_session.sh [probe] [check] [backward] [integration]  # default: all four
#
#   probe        hopf_cole bf16: every kv-same config × key splits, anatomy     (≈ 1–2 min)
#   check        benchmarks/gpu_check.py: every kernel's correctness (each autotune config once)
#                and timing (≈ 3–4 min)
#   backward     benchmarks/gpu_backward.py: fused backward correctness, timing (≈ 2–3 min)
#   integration  benchmarks/gpu_integration.py: HF / FX on the kernel + instrumentation timing
# One device call runs at most 10 minutes: use two, e.g. `probe check`, then `backward integration`.
# Results: $OUT/gpu_check.json, $OUT/gpu_backward.json, $OUT/gpu_integration*.json, $OUT/*.log,
# $OUT/gpu_state.csv
# (SM clock, power, temperature, throttle reasons before / after each step); OUT defaults to /tmp.
set -u
cd "$(dirname "$0")/.."
export OUT="${OUT:-/tmp}" PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1
PY="${PYTHON:-python}"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(probe check backward integration)
status=0

gpu_state() {  # clocks, power and temperature: run-to-run variance (throttling?) shows here
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  nvidia-smi --query-gpu=timestamp,name,clocks.sm,clocks.max.sm,clocks.mem,power.draw,\
temperature.gpu,clocks_throttle_reasons.active --format=csv,noheader 2>/dev/null \
    | sed "s/^/$1, /" >> "$OUT/gpu_state.csv" || true
}

step() {  # name, limit in seconds, command...
  local name=$1 limit=$2
  shift 2
  gpu_state "before $name"
  echo "== $name (limit ${limit}s) $(date -u +%H:%M:%S)"
  timeout --signal=ABRT --kill-after=15 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc"
  gpu_state "after $name"
  [ "$rc" -ne 0 ] && status=1
  return 0
}

for s in "${steps[@]}"; do
  case "$s" in
    probe) GPU_SECTIONS=probe_hopf_cole step probe 240 "$PY" benchmarks/gpu_integration.py
           [ -f "$OUT/gpu_integration.json" ] && mv "$OUT/gpu_integration.json" \
             "$OUT/gpu_integration_probe.json" ;;
    check) step check 300 "$PY" benchmarks/gpu_check.py ;;
    backward) step backward 270 "$PY" benchmarks/gpu_backward.py ;;
    integration) GPU_SECTIONS=correct_hf,correct_fx,time_instrument \
                 step integration 300 "$PY" benchmarks/gpu_integration.py ;;
    *) echo "unknown step '$s' (expected probe, check, backward or integration)" >&2; exit 2 ;;
  esac
done
exit $status
