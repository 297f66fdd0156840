"""Benchmark `hjplug.convert` on a GPT-2-small-sized config (random weights, CPU).

    convert time  vs  torch.export.export alone        (same process, same inputs)
    converted forward  vs  original forward (sdpa)     (batch 4 × 128 tokens, interleaved runs)

Targets (issue 3): convert ≤ 1.5× export; converted forward ≤ 1.05× original.
Usage: python benchmarks/bench_convert.py [--layers 12] [--repeats 3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
import warnings

import torch


def _median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="repeats of export / convert")
    ap.add_argument("--forward-repeats", type=int, default=10)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    import hjplug

    transformers.logging.set_verbosity_error()
    warnings.simplefilter("ignore")
    cfg = transformers.GPT2Config(n_layer=args.layers, n_embd=args.hidden, n_head=args.heads,
                                  attn_implementation="sdpa")
    torch.manual_seed(0)
    model = transformers.GPT2Model(cfg).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=g)
    inputs = {"input_ids": ids}

    torch.export.export(model, (), {**inputs, "use_cache": False}, strict=False)  # warm-up
    t_export, export_runs = _median_time(
        lambda: torch.export.export(model, (), {**inputs, "use_cache": False}, strict=False),
        args.repeats)
    holder = {}
    t_convert, convert_runs = _median_time(
        lambda: holder.__setitem__("hj", hjplug.convert(model, inputs)), args.repeats)
    hj = holder["hj"]

    with torch.inference_mode():
        ref = model(**inputs, use_cache=False).last_hidden_state
        out = hj(**inputs).last_hidden_state
        max_err = float((ref - out).abs().max())
        for _ in range(2):  # warm-up
            model(**inputs, use_cache=False)
            hj(**inputs)
        orig_runs, conv_runs = [], []
        for _ in range(args.forward_repeats):  # interleaved: the two see the same machine state
            t0 = time.perf_counter()
            model(**inputs, use_cache=False)
            orig_runs.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hj(**inputs)
            conv_runs.append(time.perf_counter() - t0)
    t_orig, t_conv = statistics.median(orig_runs), statistics.median(conv_runs)

    result = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"torch {torch.__version__} (threads {torch.get_num_threads()})",
        "config": f"GPT-2 {args.layers} layers, hidden {args.hidden}, {args.heads} heads, "
                  "random weights, sdpa",
        "export_s": t_export, "convert_s": t_convert, "convert_over_export": t_convert / t_export,
        "export_runs_s": export_runs, "convert_runs_s": convert_runs,
        "forward_shape": [args.batch, args.seq],
        "forward_original_s": t_orig, "forward_converted_s": t_conv,
        "forward_ratio": t_conv / t_orig, "max_abs_diff": max_err,
        "blocks": {k: n for k, n in hjplug.inspect(hj).kinds().items()},
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
