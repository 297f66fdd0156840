"""`hjplug export-onnx --check`: ONNX Runtime on the written file against the PyTorch model, on
the export's own inputs (hjplug.integrations.onnxruntime.check_parity), as a short table."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.api import Loaded
    from hjplug.integrations.onnxruntime.records import ExportResult

__all__ = ["RTOL", "check_export"]

RTOL = 1e-4  # max |ORT − PyTorch| / max |PyTorch| per output (float32 round-off, with margin)


def check_export(loaded: Loaded, result: ExportResult) -> int:
    """Print max abs / relative error per output and a verdict; 0 when parity holds, else 1.
    Raises OrtRunError when ONNX Runtime cannot load or run the file."""
    from rich.table import Table

    from hjplug.cli._console import stdout_console
    from hjplug.integrations.onnxruntime import parity as parity_mod

    parity = parity_mod.check_parity(loaded.model, result, loaded.inputs)
    table = Table(title=f"parity — ONNX Runtime ({parity.provider}) against PyTorch, on the "
                  "export's inputs", title_justify="left")
    table.add_column("output", overflow="fold")
    table.add_column("max |ORT − PyTorch|", justify="right")
    table.add_column("relative", justify="right")
    table.add_column("verdict", justify="center")
    for name, err in parity.max_abs.items():
        rel = parity.max_rel[name]
        table.add_row(name, f"{err:.2e}", f"{rel:.2e}",
                      "[green]ok[/]" if rel <= RTOL else "[bold red]FAIL[/]")
    out = stdout_console(table)
    out.print(table)
    if parity.ok(RTOL):
        out.print(f"[green]parity holds[/] (relative error ≤ {RTOL:.0e} on every output)")
        return 0
    print(f"hjplug export-onnx: parity fails: {result.path} differs from the PyTorch model by "
          f"{parity.worst_rel:.2e} of an output's scale (tolerance {RTOL:.0e}); the file was "
          "written. Try another --opset, or report it with the model's config.",
          file=sys.stderr)
    return 1
