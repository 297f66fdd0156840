"""tests/kernels: the Triton-interpreter tests (interp/) are collected only in a process started
with TRITON_INTERPRET=1; test_interpreter_subprocess.py starts such a process for them."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("TRITON_INTERPRET") == "1" else ["interp/*"]
