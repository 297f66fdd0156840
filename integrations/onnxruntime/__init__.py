"""hjplug.integrations.onnxruntime — analysed ONNX exports that ONNX Runtime runs.

    export_onnx(model, path, example_inputs=None, *, stats=False, opset=None, dynamic=True)
        -> ExportResult          torch.onnx.export + the ONNX pass (hjplug-domain functions)
    check_parity(model, result, example_inputs) -> OrtParity     ORT vs PyTorch per output
    session(path, provider=None, optimize=True, threads=None)    an onnxruntime session
(`hjplug export-onnx` lives in hjplug.cli.export_onnx.)

Importing this package loads neither torch, onnx nor onnxruntime; each name loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.integrations.onnxruntime.export import export_onnx as export_onnx
    from hjplug.integrations.onnxruntime.parity import check_parity as check_parity
    from hjplug.integrations.onnxruntime.records import ExportError as ExportError
    from hjplug.integrations.onnxruntime.records import ExportResult as ExportResult
    from hjplug.integrations.onnxruntime.records import OrtParity as OrtParity
    from hjplug.integrations.onnxruntime.records import OrtRunError as OrtRunError
    from hjplug.integrations.onnxruntime.records import StatOutput as StatOutput
    from hjplug.integrations.onnxruntime.sessions import providers as providers
    from hjplug.integrations.onnxruntime.sessions import session as session

_P = "hjplug.integrations.onnxruntime."
_LAZY: dict[str, str] = {
    "export_onnx": _P + "export",
    "check_parity": _P + "parity",
    "ExportError": _P + "records",
    "ExportResult": _P + "records",
    "OrtParity": _P + "records",
    "OrtRunError": _P + "records",
    "StatOutput": _P + "records",
    "providers": _P + "sessions",
    "session": _P + "sessions",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'hjplug.integrations.onnxruntime' has no attribute "
                             f"{name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
