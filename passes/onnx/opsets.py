"""Which default-domain (ai.onnx) opsets the installed onnx and ONNX Runtime can use.

onnx reports its newest opset directly: `onnx.defs.onnx_opset_version()`.

ONNX Runtime has no public "newest opset" call. Its model loader refuses a model stamped with a
default-domain opset newer than the ONNX release it was built with, saying "Current official
support for domain ai.onnx is till opset N" (onnxruntime/core/graph/model_load_utils.h,
`ValidateOpsetForDomain`; the session option `session.allow_released_opsets_only` is on by
default). `ort_newest_opset` reads N from exactly that check: it loads a one-node model stamped
with an opset no ONNX release has (`_BEYOND`) and parses the message. Where the message does not
parse (another wording in another release), N is the newest `since_version` among the ai.onnx
schemas of ONNX Runtime's own registry (`onnxruntime.capi.onnxruntime_pybind11_state.
get_all_operator_schema`, present in the PyPI wheels). Both agreed on this machine's
onnxruntime 1.32.0 (N = 28, as onnx 1.23's own newest); tests/onnx/test_onnx_opset_runtime_limit.py
checks the number against a real load at N and N + 1. No number is hard-coded.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import onnx

__all__ = ["MIN_OPSET", "OpsetRange", "export_opset_problem", "ort_newest_opset",
           "runnable_opsets"]

MIN_OPSET = 7  # the oldest default-domain opset ONNX Runtime runs (its kernels start at 7)
_BEYOND = 10_000  # an opset no ONNX release defines: the loader names its newest when refusing
_TILL = re.compile(r"domain ai\.onnx is till opset (\d+)")


@dataclass(frozen=True)
class OpsetRange:
    """Default-domain opsets a file must use to be checked by onnx and run by ONNX Runtime."""

    low: int
    high: int
    onnx_newest: int
    ort_newest: int | None  # None: onnxruntime not installed (or it said nothing usable)
    ort_version: str | None

    def describe(self) -> str:
        ort = (f", onnxruntime {self.ort_version} loads ≤ {self.ort_newest}"
               if self.ort_newest is not None else "")
        return f"onnx {onnx.__version__} defines ≤ {self.onnx_newest}{ort}"


def _probe(opset: int) -> str | None:
    """The error text of ONNX Runtime loading a one-node model at `opset` (None: it loaded)."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    model = h.make_model(h.make_graph([h.make_node("Identity", ["x"], ["y"])], "probe", [x], [y]),
                         opset_imports=[h.make_opsetid("", opset)], ir_version=8)
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own exception classes
        return str(err)
    return None


def _registry_newest() -> int | None:
    try:
        from onnxruntime.capi.onnxruntime_pybind11_state import (  # type: ignore[import-untyped]
            get_all_operator_schema,
        )
    except ImportError:
        return None
    versions = [s.since_version for s in get_all_operator_schema() if s.domain in ("", "ai.onnx")]
    return max(versions) if versions else None


@functools.lru_cache(maxsize=1)
def ort_newest_opset() -> int | None:
    """The newest default-domain opset the installed ONNX Runtime loads (None without it)."""
    try:
        import onnxruntime  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return None
    found = _TILL.search(_probe(_BEYOND) or "")
    return int(found.group(1)) if found else _registry_newest()


def runnable_opsets() -> OpsetRange:
    """The opsets onnx checks and ONNX Runtime (when installed) loads."""
    newest = onnx.defs.onnx_opset_version()
    ort_newest = ort_newest_opset()
    version = None
    if ort_newest is not None:
        import onnxruntime as ort

        version = ort.__version__
    high = newest if ort_newest is None else min(newest, ort_newest)
    return OpsetRange(MIN_OPSET, high, newest, ort_newest, version)


def export_opset_problem(opset: int, where: str = "export_onnx") -> str | None:
    """Why an export at default-domain `opset` could not be checked or run here (one message:
    expected, found, what to do); None when it can."""
    r = runnable_opsets()
    if r.low <= opset <= r.high:
        return None
    fix = ""
    if opset < r.low:
        why = f"is older than any ONNX Runtime runs (≥ {r.low})"
    elif r.ort_newest is not None and opset > r.ort_newest:
        why = (f"is newer than the installed onnxruntime {r.ort_version} loads (≤ "
               f"{r.ort_newest}), so the analysed file could not run there")
        fix = ", or upgrade onnxruntime"
    else:
        why = f"is newer than the installed onnx {onnx.__version__} defines (≤ {r.onnx_newest})"
        fix = ", or upgrade onnx"
    return (f"{where}: opset {opset} {why}; expected an opset in {r.low}…{r.high} ({r.describe()}"
            f"). Pass opset={r.high} (or None for the exporter's default){fix}.")
