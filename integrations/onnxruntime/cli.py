"""`hjplug export-onnx MODEL OUT.onnx [--stats] [--opset N]`, as one function the CLI calls.

MODEL is what `hjplug inspect` takes: a local Hugging Face model directory, a model id in the
local HF cache, or a config.json (random weights). Nothing is downloaded. (Loading uses
hjplug.api.load_model, imported when called: the CLI layer sits above the api layer.)
"""

from __future__ import annotations

import os
import sys

__all__ = ["run_export_cli"]


def run_export_cli(model_ref: str, out: str, stats: bool = False,
                   opset: int | None = None) -> int:
    """Load `model_ref`, export it analysed to `out`; print a summary (stdout) or one error line
    (stderr). Returns the exit status: 0 written, 1 failed."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from hjplug.errors import HJPlugError

    try:
        from hjplug.api import load_model
        from hjplug.integrations.onnxruntime.export import export_onnx
        from hjplug.passes.onnx.io import check_destination

        check_destination(out)  # before loading: a bad output path fails fast
        loaded = load_model(model_ref)
        result = export_onnx(loaded.model, out, loaded.inputs, stats=stats, opset=opset)
    except HJPlugError as err:
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
