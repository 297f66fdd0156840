"""hjplug.passes.onnx — the ONNX pass on any .onnx file: recognise HJ blocks, wrap each into a
model-local `hjplug`-domain function that ONNX Runtime runs unchanged, annotate and report.

Importing this package imports `onnx` (never done by `import hjplug`).
"""

from hjplug.passes.onnx.api import analyse, inspect_onnx, rewrite
from hjplug.passes.onnx.graph import GraphIndex
from hjplug.passes.onnx.io import MIN_OPSET, OnnxFileError, load, save_atomic
from hjplug.passes.onnx.records import FUNCTION_NAMES, NearMiss, OnnxMatch, OnnxRecognition
from hjplug.passes.onnx.rules import DEFAULT_RULES
from hjplug.passes.onnx.runner import recognize
from hjplug.passes.onnx.wrap import DOMAIN, wrap

__all__ = [
    "DEFAULT_RULES",
    "DOMAIN",
    "FUNCTION_NAMES",
    "MIN_OPSET",
    "GraphIndex",
    "NearMiss",
    "OnnxFileError",
    "OnnxMatch",
    "OnnxRecognition",
    "analyse",
    "inspect_onnx",
    "load",
    "recognize",
    "rewrite",
    "save_atomic",
    "wrap",
]
