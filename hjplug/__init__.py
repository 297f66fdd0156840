"""hjplug — Hamilton–Jacobi readings of deep networks for PyTorch and Hugging Face.

`import hjplug` is light (no torch, transformers, onnx or triton): the records and errors load
eagerly; everything else loads on first attribute access, through the explicit table below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hjplug._version import __version__
from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

if TYPE_CHECKING:  # pragma: no cover
    from hjplug import math as math
    from hjplug.identities import verify as verify

# public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "math": ("hjplug.math", None),
    "verify": ("hjplug.identities", "verify"),
    "paper": ("hjplug.paper", "run_paper"),
    "inspect": ("hjplug.api", "inspect"),
    "convert": ("hjplug.api", "convert"),
    "deform": ("hjplug.api", "deform"),
    "onnx": ("hjplug.passes.onnx", None),
    "export_onnx": ("hjplug.integrations.onnxruntime", "export_onnx"),
    "instrument": ("hjplug.instrument", None),  # the package; calling it calls instrument()
    "sweep": ("hjplug.instrument", "sweep"),
    "attribute": ("hjplug.instrument", "attribute"),
}

__all__ = [
    "BlockKind",
    "Exactness",
    "HJPlugError",
    "HJSpec",
    "Hamiltonian",
    "InvalidArgumentError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'hjplug' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
