#!/usr/bin/env bash
# hjplug's two commands. Each sets up .venv on first use (and again whenever pyproject.toml
# changes), then does its job:
#   ./dev.sh main   — the main job: `hjplug inspect` (no argument) on the bundled real MiniLM
#   ./dev.sh test   — the whole test suite (pytest; "no tests ran" counts as a failure)
# Extra arguments go to the command (e.g. ./dev.sh test -k math, ./dev.sh main --json).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${HJPLUG_VENV:-.venv}"
TORCH_SPEC="${HJPLUG_TORCH:-torch==2.13.0}"  # the CPU wheel; set e.g. HJPLUG_TORCH=torch for CUDA

pick_python() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "hjplug: Python >= 3.11 with venv and pip is required (none found on PATH)" >&2
  return 1
}

setup() {
  local stamp="$VENV/.hjplug-setup" want
  want="$(cksum pyproject.toml | cut -d' ' -f1)-$TORCH_SPEC"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "hjplug: setting up $VENV (first use or pyproject.toml changed)…" >&2
  [ -x "$VENV/bin/python" ] || "$(pick_python)" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first and pinned, so that the dependency resolver does not pull a multi-GB CUDA build.
  "$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  main)
    setup
    exec "$VENV/bin/hjplug" inspect "$@"
    ;;
  test)
    setup
    set +e
    "$VENV/bin/python" -m pytest "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then
      echo "hjplug: pytest collected no tests — treating that as a failure" >&2
      exit 1
    fi
    exit "$rc"
    ;;
  *)
    echo "usage: ./dev.sh main [args…] | ./dev.sh test [pytest args…]" >&2
    exit 2
    ;;
esac
