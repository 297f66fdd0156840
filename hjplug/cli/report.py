"""`hjplug report [MODEL] -o report.html [--format md]`: a self-contained report of a model's
Hamilton–Jacobi reading (block table, entropy heat map, ε-sweeps, folds, attribution).

MODEL as for `hjplug inspect` (default: the bundled all-MiniLM-L6-v2, offline). -o's suffix
(.html / .md) and --format agree: either alone decides the other. Bad input (an unwritable -o
path, a suffix against --format, --topk < 1, a --query or --fold-head the model does not have)
is refused before any stage runs: one line, exit 2. A stage that fails is shown in the report;
the command then exits 1 after writing it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hjplug.cli._model_arg import (
    OutputPathError,
    add_model_argument,
    add_text_argument,
    check_output,
    load,
)
from hjplug.cli._text import check_text


def _pair(text: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected LAYER,HEAD (two ints); got {text!r}") from exc
    return a, b


SUFFIXES: dict[str, tuple[str, ...]] = {"html": (".html", ".htm"), "md": (".md", ".markdown")}
_NAMES = {"html": "HTML", "md": "Markdown"}


def output_and_format(args: argparse.Namespace) -> tuple[Path, str]:
    """-o and --format, made to agree: either one alone decides the other; a suffix that
    contradicts --format, or that neither format writes, raises OutputPathError."""
    if args.output is None:
        fmt = args.format or "html"
        return Path(f"report{SUFFIXES[fmt][0]}"), fmt
    out = Path(args.output)
    suffix = out.suffix.lower()
    found = next((f for f, sfx in SUFFIXES.items() if suffix in sfx), None)
    if args.format is None and found is None:
        raise OutputPathError(
            f"{out}: -o writes HTML (.html) or Markdown (.md) and its suffix picks which; got "
            f"{_suffix(suffix)}. Give -o {out.with_suffix('.html')} or -o "
            f"{out.with_suffix('.md')}.")
    fmt = args.format or found
    assert fmt is not None
    if found != fmt:
        other = f", or --format {found}" if found else ""
        raise OutputPathError(
            f"{out}: --format {fmt} writes {_NAMES[fmt]}, but -o has {_suffix(suffix)}. Give "
            f"-o {out.with_suffix(SUFFIXES[fmt][0])}{other} (without --format, -o's suffix "
            "picks the format).")
    return out, fmt


def _suffix(suffix: str) -> str:
    return f"the suffix '{suffix}'" if suffix else "no suffix"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="self-contained HTML (or Markdown) report of a model's HJ reading "
        "(default: all-MiniLM-L6-v2, offline)",
        description="Inspect MODEL, record per-head entropies, sweep ε on the most and least "
        "focused heads (with the empirical and the paper's critical scale ε*), scan one head "
        "for fold bifurcations and show the top-k attribution of one query; write everything "
        "to one HTML file with inline CSS and base64 PNG figures (no network needed to open "
        "it), or to Markdown with PNG files beside it.")
    add_model_argument(p)
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="output file, .html or .md (default: report.html, or report.md with "
                   "--format md)")
    p.add_argument("--format", choices=tuple(SUFFIXES), default=None,
                   help="html (one self-contained file) or md (Markdown + PNGs beside it); "
                   "default: from -o's suffix, else html")
    add_text_argument(p)
    p.add_argument("--query", type=int, default=None,
                   help="query token index for the attribution (default: the middle token)")
    p.add_argument("--topk", type=int, default=8, help="attribution weights shown (default 8)")
    p.add_argument("--fold-head", type=_pair, default=None, metavar="LAYER,HEAD",
                   help="head of the fold scan (default: the least focused head)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch intra-op threads (default 1: the report's tensors are small, "
                        "and extra threads mostly wait on each other)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from hjplug.errors import InvalidArgumentError
    from hjplug.htmlreport import check_writable
    from hjplug.htmlreport.request import check_syntax

    if args.topk < 1:
        raise InvalidArgumentError("--topk", "an int ≥ 1", args.topk)
    cpus = os.cpu_count() or 1
    if not 1 <= args.threads <= cpus:  # more: torch's pool fails to start its threads
        raise InvalidArgumentError("--threads", f"an int in [1, {cpus}] (the CPUs here)",
                                   args.threads,
                                   hint="Use 1 (the default) unless the model is large.")
    check_syntax(args.query, args.fold_head)  # before loading: negative indices
    default = f"report{SUFFIXES[args.format or 'html'][0]}"
    # empty, a directory, onto the model: said first, whatever the suffix
    check_output(default if args.output is None else args.output, args.model, "-o", default)
    out, args.format = output_and_format(args)
    check_writable(out)  # fail before the slow part
    check_text(args.model, args.text)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args, out)
    finally:
        torch.set_num_threads(threads)  # in-process callers (tests) get theirs back


def _run(args: argparse.Namespace, out: Path) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from hjplug.htmlreport import STAGES, collect, write_report
    from hjplug.htmlreport.request import check_request

    err = Console(stderr=True)
    with err.status("report: load model…"):  # transient: a refusal below prints one line only
        loaded = load(args.model, text=args.text)
    check_request(loaded, args.query, args.fold_head)  # indices vs the model, before any work
    stages = ("load", *STAGES, "write")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
            "{task.completed}/{task.total}"), TimeElapsedColumn(), console=err,
            transient=False) as bar:
        task = bar.add_task(f"report: {STAGES[0]}", total=len(stages), completed=1)

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
