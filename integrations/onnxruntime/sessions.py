"""ONNX Runtime sessions for exported files: CUDA when onnxruntime-gpu and a GPU are present,
else CPU; graph optimisations on (ORT_ENABLE_ALL) unless asked otherwise."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["providers", "run", "session"]


def providers() -> list[str]:
    """["CUDAExecutionProvider", "CPUExecutionProvider"] when onnxruntime-gpu provides CUDA and
    torch sees a GPU, else ["CPUExecutionProvider"]."""
    from hjplug.passes.onnx.parity import providers as _providers

    return _providers()


def session(path: str | os.PathLike[str], *, provider: Sequence[str] | None = None,
            optimize: bool = True, threads: int | None = None) -> Any:
    """An `onnxruntime.InferenceSession` of `path`."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    opts = ort.SessionOptions()
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts,
                                providers=list(provider or providers()))


def run(sess: Any, feeds: Mapping[str, Any], names: Sequence[str] | None = None
        ) -> dict[str, np.ndarray]:
    """Run `sess` on `feeds` (tensors or arrays; inputs the graph lacks are dropped). A failure
    raises (ORT's message is in the exception); ORT's own log line of it is kept off stderr."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    wanted = {i.name for i in sess.get_inputs()}
    arrays = {k: _numpy(v) for k, v in feeds.items() if k in wanted}
    out_names = list(names) if names is not None else [o.name for o in sess.get_outputs()]
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # fatal only: the exception says what failed
    return dict(zip(out_names, sess.run(out_names, arrays, quiet), strict=True))


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)
