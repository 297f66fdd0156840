"""`hjplug export-onnx MODEL OUT.onnx [--stats] [--opset N]`, as one function the CLI calls.

MODEL is what `hjplug inspect` takes: a local Hugging Face model directory, a model id in the
local HF cache, or a config.json (random weights). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys

from hjplug.cli._model_arg import add_model_argument, check_output, load

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
    p.add_argument("out", help="output .onnx path (its directory must exist)")
    p.add_argument("--stats", action="store_true",
                   help="add per-head log-partition and entropy outputs for every attention step")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_export_cli(args.model, args.out, args.stats, args.opset,
                          debug=getattr(args, "debug", False))


def run_export_cli(model_ref: str, out: str, stats: bool = False,
                   opset: int | None = None, *, debug: bool = False) -> int:
    """Load `model_ref`, export it analysed to `out`; print a summary (stdout) or one error line
    (stderr; with `debug`, the error propagates). Returns the exit status: 0 written, 1 failed."""
    from hjplug.errors import HJPlugError

    try:
        from hjplug.integrations.onnxruntime.export import export_onnx
        from hjplug.passes.onnx.io import check_destination

        check_destination(out)  # before loading: a bad output path fails fast
        check_output(out, model_ref, "OUT.onnx", "model.hj.onnx")  # never onto the model
        loaded = load(model_ref)
        result = export_onnx(loaded.model, out, loaded.inputs, stats=stats, opset=opset)
    except HJPlugError as err:
        if debug:
            raise
        print(f"hjplug export-onnx: error: {err}", file=sys.stderr)
        return 1
    print(result.summary())
    from hjplug.report.inspect_report import fmt_eps

    for block in result.report.blocks:
        if str(block.kind) == "attention":
            print(f"  {block.path}: attention, ε = {fmt_eps(block.epsilon)}")
    for note in result.notes:
        print(f"note: {note}")
    if result.stats:
        print(f"statistics outputs: {len(result.stats)} (log_partition and entropy per "
              "attention step)")
    return 0
