"""`hjplug export-onnx MODEL OUT.onnx [--stats] [--opset N] [--check]`, as one function the CLI
calls.

MODEL is what `hjplug inspect` takes: a local Hugging Face model directory, a model id in the
local HF cache, or a config.json (random weights). Nothing is downloaded. Exit status as for the
other commands: 0 written (and, with --check, ONNX Runtime agrees with PyTorch), 1 the export or
the check failed, 2 bad input (MODEL, OUT.onnx, --opset), refused before any work.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from hjplug.cli._model_arg import add_model_argument, check_output, load
from hjplug.errors import HJPlugError

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.api import Loaded
    from hjplug.integrations.onnxruntime.records import ExportResult

__all__ = ["register", "run", "run_export_cli"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-onnx",
        help="export a model as analysed ONNX (hjplug-domain functions ONNX Runtime runs as is)",
        description="Export MODEL with torch.onnx (dynamo; legacy fallback), wrap each recognised "
        "block into a model-local hjplug-domain function carrying its HJ reading, check it, and "
        "write OUT.onnx atomically. Batch and sequence axes are dynamic.",
    )
    add_model_argument(p, help="model directory, model id in the local HF cache, or config.json",
                       required=True)
    p.add_argument("out", metavar="OUT.onnx", help="output .onnx path (its directory must exist)")
    p.add_argument("--stats", action="store_true",
                   help="add per-head log-partition and entropy outputs for every attention step")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset, one the installed onnx and onnxruntime support (default: "
                   "the exporter's)")
    p.add_argument("--check", action="store_true",
                   help="then run OUT.onnx in ONNX Runtime and the PyTorch model on the same "
                   "inputs and print the max error per output; exit 1 if one exceeds 1e-4 of "
                   "the output's scale")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_export_cli(args.model, args.out, args.stats, args.opset,
                          debug=getattr(args, "debug", False), check=args.check)


def run_export_cli(model_ref: str, out: str, stats: bool = False, opset: int | None = None, *,
                   debug: bool = False, check: bool = False) -> int:
    """Load `model_ref`, export it analysed to `out` (and with `check`, compare it with PyTorch);
    print a summary (stdout) or one error line (stderr; with `debug`, the error propagates).
    Returns the exit status: 0 written, 1 the export or the check failed, 2 bad input."""
    from hjplug.integrations.onnxruntime.records import ExportError, OrtRunError

    try:
        loaded = _checked_load(model_ref, out, opset)
        from hjplug.integrations.onnxruntime import export as export_mod

        result = export_mod.export_onnx(loaded.model, out, loaded.inputs, stats=stats,
                                        opset=opset)
        _print_summary(result)
        if check:
            from hjplug.cli._parity import check_export

            return check_export(loaded, result)
    except HJPlugError as err:
        if debug:
            raise
        print(f"hjplug export-onnx: error: {err}", file=sys.stderr)
        return 1 if isinstance(err, ExportError | OrtRunError) else 2
    return 0


def _checked_load(model_ref: str, out: str, opset: int | None) -> Loaded:
    """Bad input refused before the model loads (a bad OUT.onnx, an opset out of range), then
    the model: every error here is the user's input (exit 2)."""
    from hjplug.passes.onnx.io import check_destination

    check_output(out, model_ref, "OUT.onnx", "model.hj.onnx", suffixes=(".onnx",))
    check_destination(out)
    if opset is not None:
        _check_opset(opset)
    return load(model_ref)


def _check_opset(opset: int) -> None:
    """--opset outside what the installed onnx / onnxruntime take: bad input (exit 2)."""
    from hjplug.passes.onnx.opsets import export_opset_problem

    if (problem := export_opset_problem(opset, where="--opset")) is not None:
        raise OpsetError(problem.replace("Pass opset=", "Pass --opset ").replace(
            " (or None for the exporter's default)", " (or leave it out)"))


class OpsetError(HJPlugError):
    """--opset that the installed onnx or onnxruntime cannot use."""


def _print_summary(result: ExportResult) -> None:
    from hjplug.report.inspect_report import fmt_eps

    print(result.summary())
    for block in result.report.blocks:
        if str(block.kind) == "attention":
            print(f"  {block.path}: attention, ε = {fmt_eps(block.epsilon)}")
    for note in result.notes:
        print(f"note: {note}")
    if result.stats:
        print(f"statistics outputs: {len(result.stats)} (log_partition and entropy per "
              "attention step)")
