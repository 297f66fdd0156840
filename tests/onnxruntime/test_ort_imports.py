"""Importing hjplug.integrations.onnxruntime loads none of torch, onnx, onnxruntime or
transformers; the names resolve on first use."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_light() -> None:
    code = ("import sys, hjplug.integrations.onnxruntime as m\n"
            "heavy = [x for x in ('torch', 'onnx', 'onnxruntime', 'onnxscript', 'transformers')"
            " if x in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert callable(m.export_onnx) and callable(m.check_parity)\n"
            "assert m.ExportResult.__name__ == 'ExportResult'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
