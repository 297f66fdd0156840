"""ONNX Runtime sessions for exported files: CUDA when onnxruntime-gpu and a GPU are present,
else CPU; graph optimisations on (ORT_ENABLE_ALL) unless asked otherwise."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hjplug.integrations.onnxruntime.records import OrtRunError

__all__ = ["providers", "run", "session"]


def providers() -> list[str]:
    """["CUDAExecutionProvider", "CPUExecutionProvider"] when onnxruntime-gpu provides CUDA and
    torch sees a GPU, else ["CPUExecutionProvider"]."""
    from hjplug.passes.onnx.parity import providers as _providers

    return _providers()


def session(path: str | os.PathLike[str], *, provider: Sequence[str] | None = None,
            optimize: bool = True, threads: int | None = None) -> Any:
    """An `onnxruntime.InferenceSession` of `path`. A file whose `hjplug` calls lack their
    model-local functions (stripped, hand-edited) raises OrtRunError saying which node and what
    to do; other load failures raise ONNX Runtime's own exception."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    opts = ort.SessionOptions()
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    prov = list(provider or providers())
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=prov)
    except Exception as err:  # onnxruntime's own pybind exception classes
        if (why := _missing_functions(path)) is not None:
            raise OrtRunError(f"ONNX Runtime ({prov[0]}) could not load {why}") from err
        raise


def _missing_functions(path: str | os.PathLike[str]) -> str | None:
    """The hjplug message for a file whose `hjplug` calls lack their functions (ONNX Runtime
    only says "hjplug:HJ…Step(-1) is not a registered function/op"), else None."""
    import onnx

    from hjplug.passes.onnx.calls import missing_function_message

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # unreadable: ONNX Runtime's own error says more
        return None
    return missing_function_message(model, path)


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
