"""`import hjplug` stays light: no onnx / onnxscript / onnxruntime until the ONNX pass is used."""

from __future__ import annotations

import subprocess
import sys


def test_import_hjplug_does_not_import_onnx():
    code = ("import sys, hjplug; bad = [m for m in ('onnx', 'onnxscript', 'onnxruntime') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_default_rules_are_an_explicit_ordered_tuple():
    from hjplug.passes.onnx import DEFAULT_RULES

    assert isinstance(DEFAULT_RULES, tuple)
    assert [r.name for r in DEFAULT_RULES] == [
        "hjplug_call", "attention", "attention_op", "contrib_attention", "recurrent", "ssm",
        "lse", "residual"]
