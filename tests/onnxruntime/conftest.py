"""Fixtures for the ONNX Runtime export tests: each tiny family exported once per session (with
statistics outputs), the PyTorch model kept beside it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@dataclass(frozen=True)
class Exported:
    model: Any  # the PyTorch model (eval)
    inputs: dict[str, Any]  # the example inputs of the export
    result: Any  # ExportResult


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """exported(family) → Exported: tiny `family` model exported with stats=True (cached)."""
    import ort_models

    from hjplug.integrations.onnxruntime import export_onnx

    out: Path = tmp_path_factory.mktemp("ort")
    cache: dict[str, Exported] = {}

    def get(family: str) -> Exported:
        if family not in cache:
            model, inputs = ort_models.build(family), ort_models.inputs(family)
            result = export_onnx(model, out / f"{family}.onnx", inputs, stats=True)
            cache[family] = Exported(model, inputs, result)
        return cache[family]

    return get
