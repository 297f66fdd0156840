"""`hjplug report [MODEL] -o report.html [--format md]`: a self-contained report of a model's
Hamilton–Jacobi reading (block table, entropy heat map, ε-sweeps, folds, attribution).

MODEL as for `hjplug inspect` (default: the bundled all-MiniLM-L6-v2, offline). A stage that
fails is shown in the report; the command then exits 1 after writing it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _pair(text: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected LAYER,HEAD (two ints); got {text!r}") from exc
    return a, b


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="self-contained HTML (or Markdown) report of a model's HJ reading "
        "(default: all-MiniLM-L6-v2, offline)",
        description="Inspect MODEL, record per-head entropies, sweep ε on the most and least "
        "focused heads, scan one head for fold bifurcations and show the top-k attribution of "
        "one query; write everything to one HTML file with inline CSS and base64 PNG figures "
        "(no network needed to open it), or to Markdown with PNG files beside it.")
    p.add_argument("model", nargs="?", default=None,
                   help="model directory, cached model id, or config.json (default: bundled "
                        "all-MiniLM-L6-v2)")
    p.add_argument("-o", "--output", default="report.html", help="output file (default: "
                   "report.html)")
    p.add_argument("--format", choices=("html", "md"), default="html",
                   help="html (one self-contained file) or md (Markdown + PNGs beside it)")
    p.add_argument("--text", default=None, help="sentence to tokenize (models with a tokenizer)")
    p.add_argument("--query", type=int, default=None,
                   help="query token index for the attribution (default: the middle token)")
    p.add_argument("--topk", type=int, default=8, help="attribution weights shown (default 8)")
    p.add_argument("--fold-head", type=_pair, default=None, metavar="LAYER,HEAD",
                   help="head of the fold scan (default: the least focused head)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from hjplug.api import load_model
    from hjplug.errors import InvalidArgumentError
    from hjplug.htmlreport import STAGES, check_writable, collect, write_report

    if args.topk < 1:
        raise InvalidArgumentError("--topk", "an int ≥ 1", args.topk, where="hjplug report")
    out = Path(args.output)
    check_writable(out)  # fail before the slow part
    err = Console(stderr=True)
    stages = ("load", *STAGES, "write")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
            "{task.completed}/{task.total}"), TimeElapsedColumn(), console=err,
            transient=False) as bar:
        task = bar.add_task("report: load model", total=len(stages))
        loaded = load_model(args.model, text=args.text)
        bar.update(task, advance=1, description=f"report: {STAGES[0]}")

        def step(name: str) -> None:
            i = STAGES.index(name)
            nxt = STAGES[i + 1] if i + 1 < len(STAGES) else "write"
            bar.update(task, advance=1, description=f"report: {nxt}")

        data = collect(loaded, model_source=args.model, query=args.query, topk=args.topk,
                       fold_head=args.fold_head, text=args.text or "", step=step,
                       debug=args.debug)
        files = write_report(data, out, args.format)
        bar.update(task, advance=1, description="report: done")
    print(f"wrote {files[0]}" + (f" and {len(files) - 1} PNG files" if len(files) > 1 else ""))
    if data.errors:
        for stage, msg in data.errors:
            print(f"hjplug report: {stage} failed: {msg}", file=sys.stderr)
        print(f"hjplug report: the report was written with {len(data.errors)} failed "
              "stage(s) shown in it.", file=sys.stderr)
        return 1
    return 0
