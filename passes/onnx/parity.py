"""Run two ONNX models in ONNX Runtime on the same inputs and compare their outputs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

__all__ = ["Parity", "compare", "providers", "random_feeds"]

_NP = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
       onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.INT64: np.int64,
       onnx.TensorProto.INT32: np.int32, onnx.TensorProto.BOOL: np.bool_}


@dataclass(frozen=True)
class Parity:
    """max |a − b| and max |a − b| / max |a| over all outputs, and the provider used."""

    max_abs: float
    max_rel: float
    outputs: tuple[str, ...]
    provider: str


def providers() -> list[str]:
    """CUDA when onnxruntime-gpu provides it and a GPU is visible, else CPU."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    if "CUDAExecutionProvider" in ort.get_available_providers():
        try:
            import torch

            if torch.cuda.is_available():
                return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        except ImportError:
            pass
    return ["CPUExecutionProvider"]


def random_feeds(model: onnx.ModelProto | str | os.PathLike, *, seed: int = 0,
                 dims: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Random inputs for every graph input (symbolic dims from `dims`, default 2; integers in
    [0, 2), booleans all True)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load_model(str(model), load_external_data=False)
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for v in model.graph.input:
        if v.name in inits:
            continue
        tt = v.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else (dims or {}).get(d.dim_param, 2)
                 for d in tt.shape.dim]
        dtype = _NP[tt.elem_type]
        if dtype is np.bool_:
            feeds[v.name] = np.ones(shape, dtype=bool)
        elif np.issubdtype(dtype, np.integer):
            feeds[v.name] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            feeds[v.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def _session(model: onnx.ModelProto | str | os.PathLike, provider: list[str]):
    import onnxruntime as ort  # type: ignore[import-untyped]

    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(data, providers=provider)


def compare(original: onnx.ModelProto | str | os.PathLike,
            rewritten: onnx.ModelProto | str | os.PathLike,
            feeds: Mapping[str, np.ndarray] | None = None) -> Parity:
    """Run both models (same provider) on `feeds` (random if None) and compare every output."""
    prov = providers()
    a, b = _session(original, prov), _session(rewritten, prov)
    feeds = dict(feeds) if feeds is not None else random_feeds(
        original if isinstance(original, onnx.ModelProto) else str(original))
    names = [o.name for o in a.get_outputs()]
    ya, yb = a.run(names, feeds), b.run(names, feeds)
    max_abs = max_rel = 0.0
    for x, y in zip(ya, yb, strict=True):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        diff = float(np.max(np.abs(x - y))) if x.size else 0.0
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / max(float(np.max(np.abs(x))) if x.size else 0.0, 1e-30))
    return Parity(max_abs, max_rel, tuple(names), prov[0])
