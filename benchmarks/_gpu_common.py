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

__all__ = [
    "DEV", "DRY", "ROOT", "T0", "HopfColeInputs", "bench", "check_vs_torch", "finish", "log",
    "peak_mib", "plain_hopf_cole", "rel", "run_section", "sync",
]

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


class HopfColeInputs:
    """Four rotating (x [M, d], W [N, d] / √d, b [N]) sets, so timed calls do not find their
    inputs in L2; `next()` returns the next set."""

    def __init__(self, M: int, N: int, d: int, dtype: torch.dtype, n_sets: int = 4) -> None:
        self.sets = [(torch.randn(M, d, device=DEV, dtype=dtype),
                      (torch.randn(N, d, device=DEV) / d ** 0.5).to(dtype),
                      torch.randn(N, device=DEV, dtype=dtype)) for _ in range(n_sets)]
        self.i = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.i = (self.i + 1) % len(self.sets)
        return self.sets[self.i]


def plain_hopf_cole(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, eps: float
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The plain PyTorch baseline: z = (xWᵀ + b)/ε materialised [M, N]; ε·lse, π·W, H."""
    z = (x @ W.T + b) / eps  # [M, N]
    lse = torch.logsumexp(z, -1)
    p = torch.softmax(z, -1)
    return eps * lse, p @ W, lse - (p * z).sum(-1)


def rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    """‖a − ref‖ / ‖ref‖ in fp64; NaN when a has a non-finite element."""
    a, ref = a.double(), ref.double()
    if not bool(torch.isfinite(a).all()):
        return float("nan")
    return float((a - ref).norm() / ref.norm().clamp_min(1e-30))


def check_vs_torch(results: dict, name: str, ours: float, torch_err: float,
                   floor: float = 0.0) -> bool:
    """Record and print one check: ours ≤ max(2 × PyTorch's own error, floor)."""
    import math

    limit = max(2.0 * torch_err, floor)
    ok = math.isfinite(ours) and ours <= limit
    results["checks"].append(dict(name=name, ours=ours, torch=torch_err, limit=limit, ok=ok))
    log(f"{'PASS' if ok else 'FAIL'} {name}: ours {ours:.3e}  torch {torch_err:.3e}  "
        f"limit {limit:.3e}")
    return ok


def run_section(fn: Callable[[], None], results: dict) -> None:
    """fn(), recording an exception in results["errors"] and going on: one broken section must
    not waste the device call. GPU_SECTIONS="a,b" runs only the sections of those names."""
    import traceback

    wanted = os.environ.get("GPU_SECTIONS", "")
    if wanted and fn.__name__ not in wanted.split(","):
        return
    try:
        fn()
    except Exception as exc:
        results["errors"].append(f"{fn.__name__}: {exc!r}")
        traceback.print_exc()
        log(f"ERROR in {fn.__name__}: {exc!r}")


def baseline_unavailable(results: dict, what: str, exc: Exception) -> None:
    """A baseline that could not run: an error on a GPU (its ratio is missing), a note in a CPU
    dry run (SDPA's flash / cuDNN / mem-efficient backends exist only on CUDA)."""
    if DRY:
        results.setdefault("notes", []).append(f"{what}: CUDA-only baseline, skipped on CPU")
    else:
        results["errors"].append(f"{what}: {exc!r}")


def finish(results: dict, title: str, name: str) -> int:
    """Write results to $OUT/<name> (else /tmp/<name>; the tracked JSON under benchmarks/ is
    updated by copying a run's file on purpose), print the pass count, failures, errors and notes;
    return the exit status (0 only when every check passed and no section failed)."""
    import json

    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path("/tmp")
    path = out_dir / name
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    os.replace(tmp, path)  # atomic: a killed run leaves the previous file, not half of one
    n_ok = sum(1 for c in results["checks"] if c["ok"])
    print(f"\n== {title}: checks {n_ok}/{len(results['checks'])} passed, "
          f"{len(results['errors'])} errors, {time.time() - T0:.0f}s; results in {path} ==")
    for c in results["checks"]:
        if not c["ok"]:
            print(f"FAILED: {c}")
    for e in results["errors"]:
        print(f"ERROR: {e}")
    for n in results.get("notes", []):
        print(f"note: {n}")
    return 0 if n_ok == len(results["checks"]) and not results["errors"] else 1
