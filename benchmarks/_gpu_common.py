"""Shared set-up and timing for the GPU scripts (gpu_check.py, gpu_integration.py).

Import first: it puts the repository root on sys.path and, with GPU_CHECK_DRY=1 (tiny sizes on
CPU under the Triton interpreter: checks a script, not speed), sets TRITON_INTERPRET=1 and
HJPLUG_KERNEL=triton before triton is imported.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DRY = os.environ.get("GPU_CHECK_DRY") == "1"
if DRY:
    os.environ["TRITON_INTERPRET"] = "1"
    os.environ["HJPLUG_KERNEL"] = "triton"

import torch  # noqa: E402

__all__ = ["DEV", "DRY", "ROOT", "T0", "bench", "log", "peak_mib", "sync"]

T0 = time.time()
DEV = torch.device("cpu" if DRY else "cuda")


def log(msg: str) -> None:
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


def sync() -> None:
    if not DRY:
        torch.cuda.synchronize()


def bench(fn: Callable[[], object], reps: int = 20, warmup: int = 3,
          synced: bool = False) -> float:
    """Median milliseconds of fn() over `reps` CUDA-event timings after `warmup` calls.

    Default: calls are queued back to back (no synchronisation between them), so each event
    pair measures GPU time and host launch overhead hides behind the previous call, as in
    triton.testing.do_bench. synced=True synchronises before every call instead: that time
    includes the host-side launch latency of one isolated call. Dry runs: one wall-clock call.
    """
    for _ in range(warmup):
        fn()
    sync()
    if DRY:
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(starts, ends, strict=True):
        if synced:
            torch.cuda.synchronize()
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends, strict=True))


def peak_mib(fn: Callable[[], object]) -> float:
    """Peak CUDA memory fn() allocates above what was allocated before it, MiB (0 when dry)."""
    if DRY:
        return 0.0
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20
