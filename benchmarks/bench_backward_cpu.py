"""Benchmark the fused closed-form backward on CPU (reference twin) beside the recompute path it
replaced (autograd through the chunked reference forward, `_backward._vjp`).

Problems (fp32): attention B=1, H=4, S=2048, D=64 (causal and not; loss = out·g + H·g_H),
MiniLM size B=8, H=12, S=128, D=32 with a key-padding mask (every 4th row sees 96 keys; same
loss; beside it SDPA's own backward of the output alone, which computes no entropy), and the
Hopf–Cole layer M=1024, N=16384, d=64 (loss = value·g + H·g_H). Every path starts from the same
saved forward (the forward is not timed); MiniLM times are per call over 20 calls per round.
Times: one process, interleaved rounds, median (min / max beside). Peak memory: each path in a
fresh subprocess, glibc mmap threshold at 64 KiB so freed tensors leave RSS, VmHWM reset after a
warm-up; peak RSS − RSS before the measured backward.
Usage: python benchmarks/bench_backward_cpu.py [--rounds 5] [--threads 1] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
PROBLEMS = ("attention", "attention causal", "attention minilm", "hopf_cole")
CALLS = {"attention minilm": 20}  # calls per timed round (small problems)


def setup(problem: str):  # type: ignore[no-untyped-def]
    """(backward callable per path) for one problem; forward done once here."""
    import torch

    from hjplug.kernels import _backward
    from hjplug.kernels.reference.hj_attention import hj_attention, hj_attention_parts
    from hjplug.kernels.reference.hopf_cole import hopf_cole, hopf_cole_parts

    g = torch.Generator().manual_seed(0)
    if problem.startswith("attention"):
        causal = problem.endswith("causal")
        B, H, S, D = (8, 12, 128, 32) if problem.endswith("minilm") else (1, 4, 2048, 64)
        q, k, v = (torch.randn(B, H, S, D, generator=g) for _ in range(3))
        scale = D ** -0.5
        mask = None
        if problem.endswith("minilm"):
            mask = torch.zeros(B, 1, 1, S)
            mask[::4, ..., 96:] = float("-inf")  # [B, 1, 1, S] key padding
        r, pa = hj_attention_parts(q, k, v, scale=scale, causal=causal, bias=mask)
        grads = (torch.randn(B, H, S, D, generator=g), None, torch.randn(B, H, S, generator=g),
                 None)
        outs = (r.out, r.lse, r.entropy, r.lse.new_empty((B, H, S, 0)),
                torch.empty((B, H, S, 0), dtype=torch.long), pa)
        cfg = (scale, causal, -1, 0)

        def fused():
            return _backward.attention_grads((q, k, v, mask), outs, cfg, (True,) * 3 + (False,),
                                             grads)

        def recompute():
            def fn(q_, k_, v_):
                o = hj_attention(q_, k_, v_, scale=scale, causal=causal, bias=mask)
                return o.out, o.lse, o.entropy

            return _backward._vjp(fn, (q, k, v), (True,) * 3, grads[:3])

        if not problem.endswith("minilm"):
            return {"fused": fused, "recompute": recompute}
        qs, ks, vs = (t.clone().requires_grad_() for t in (q, k, v))
        o_sdpa = torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask)

        def sdpa():  # SDPA's own backward, output only (no entropy)
            return torch.autograd.grad(o_sdpa, (qs, ks, vs), grads[0], retain_graph=True)

        return {"fused": fused, "recompute": recompute, "sdpa": sdpa}
    M, N, d, eps = 1024, 16384, 64, 0.5
    x = torch.randn(M, d, generator=g)
    W = torch.randn(N, d, generator=g) / d ** 0.5
    b = torch.randn(N, generator=g)
    hr, hpa = hopf_cole_parts(x, W, b, eps)
    grads = (torch.randn(M, generator=g), None, torch.randn(M, generator=g), None)
    outs = (hr.value, hr.grad, hr.entropy, hr.value.new_empty((M, 0)),
            torch.empty((M, 0), dtype=torch.long), hpa)

    def fused():
        return _backward.hopf_cole_grads((x, W, b), outs, eps, 0, (True,) * 3, grads)

    def recompute():
        def fn(x_, W_, b_):
            o = hopf_cole(x_, W_, b_, eps)
            return o.value, o.grad, o.entropy

        return _backward._vjp(fn, (x, W, b), (True,) * 3, grads[:3])

    return {"fused": fused, "recompute": recompute}


def peak_child(problem: str, path: str, threads: int) -> None:
    """In a subprocess: print the peak RSS (MiB) of one backward above the RSS before it."""
    import torch

    torch.set_num_threads(threads)
    fns = setup(problem)
    fns[path]()  # warm-up (allocator, thread pool)

    def rss(field: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
        return float("nan")

    Path("/proc/self/clear_refs").write_text("5")
    before = rss("VmRSS:")
    fns[path]()
    print(json.dumps({"peak_mib": rss("VmHWM:") - before}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        peak_child(args.child[0], args.child[1], args.threads)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for problem in PROBLEMS:
        fns = setup(problem)
        paths = list(fns)
        calls = CALLS.get(problem, 1)
        a, b = fns["fused"](), fns["recompute"]()
        err = max(float((x - y).abs().max() / y.abs().max().clamp_min(1e-30))
                  for x, y in zip(a, b, strict=False) if x is not None and y is not None)
        times: dict[str, list[float]] = {p: [] for p in paths}
        for i in range(args.rounds):
            for p in (paths if i % 2 == 0 else paths[::-1]):
                t = time.perf_counter()
                for _ in range(calls):
                    fns[p]()
                times[p].append((time.perf_counter() - t) / calls)
        peak = {}
        for p in paths:
            env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(64 * 1024))
            out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads),
                                  "--child", problem, p], capture_output=True, text=True,
                                 env=env, check=True).stdout
            peak[p] = json.loads(out.strip().splitlines()[-1])["peak_mib"]
        row = dict(problem=problem, max_rel_diff=err, peak_mib=peak,
                   s={p: dict(median=statistics.median(v), min=min(v), max=max(v))
                      for p, v in times.items()})
        rows.append(row)
        f, r = row["s"]["fused"]["median"], row["s"]["recompute"]["median"]
        extra = "".join(f"  {p} {row['s'][p]['median']:7.4f} s" for p in paths[2:])
        print(f"{problem:18} fused {f:7.4f} s  recompute {r:7.4f} s  ({r / f:4.1f}x){extra}   "
              f"peak {peak['fused']:7.1f} vs {peak['recompute']:7.1f} MiB   max rel diff "
              f"{err:.1e}", flush=True)
    if args.out:
        from hjplug.paper._common import atomic_write_text

        meta = dict(date=datetime.date.today().isoformat(), machine=platform.processor() or
                    platform.machine(), threads=args.threads, torch=torch.__version__)
        atomic_write_text(args.out, json.dumps(dict(meta=meta, rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
