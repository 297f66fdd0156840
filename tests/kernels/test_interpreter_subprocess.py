"""Run tests/kernels/interp/ (every Triton kernel vs its twin) in a fresh interpreter process.

Why a subprocess: TRITON_INTERPRET is read when a kernel is decorated (at first import of the
kernel module). Setting it inside this process could come too late (another test may already
have imported the kernels) and would leak into every later test. A child process with the
variable set from its start is robust to collection order and leaks nothing. When this session
itself was started with TRITON_INTERPRET=1, the interp tests already ran directly: skip here.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

INTERP_DIR = Path(__file__).parent / "interp"


def test_triton_kernels_under_the_interpreter():
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("TRITON_INTERPRET=1 in this process: tests/kernels/interp ran directly")
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    env = {k: v for k, v in os.environ.items() if k != "HJPLUG_KERNEL"}
    env["TRITON_INTERPRET"] = "1"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(INTERP_DIR)],
        cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"interpreter tests failed:\n{tail}"
    assert " passed" in proc.stdout and " skipped" not in proc.stdout.splitlines()[-1], tail
