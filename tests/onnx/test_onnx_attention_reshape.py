"""The attention rule reads through a Reshape around the softmax only when it keeps the key axis
last: (b·h, q, k) → (b, h, q, k) → softmax → (b·h, q, k) → π·V is attention; a Reshape that
folds keys into queries is an honest near-miss (named, with the reason), never an exact LSE
readout with ε = 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper, numpy_helper
from onnx_helpers import check_rewritten

from hjplug.passes.onnx import inspect_onnx, rewrite

B, H, Q, D = 2, 2, 4, 8


def _graph(path: Path, view: list[int], back: list[int]) -> Path:
    """q, k, v (b·h, q, d); scores·(1/√d) → Reshape `view` → + bias → softmax → Reshape `back`
    → MatMul(π, v)."""
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Mul", ["s", "scale"], ["ss"]),
        helper.make_node("Reshape", ["ss", "view"], ["s4"]),
        helper.make_node("Add", ["s4", "bias"], ["z"]),
        helper.make_node("Softmax", ["z"], ["p"], axis=-1),
        helper.make_node("Reshape", ["p", "back"], ["p3"]),
        helper.make_node("MatMul", ["p3", "v"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(D ** -0.5, np.float32), "scale"),
             numpy_helper.from_array(np.array(view, np.int64), "view"),
             numpy_helper.from_array(np.array(back, np.int64), "back")]
    x = [helper.make_tensor_value_info(n, T.FLOAT, [B * H, Q, D]) for n in "qkv"]
    bias = helper.make_tensor_value_info("bias", T.FLOAT, [B, 1, 1, Q])
    model = helper.make_model(
        helper.make_graph(nodes, "g", [*x, bias],
                          [helper.make_tensor_value_info("y", T.FLOAT, [B * H, Q, D])], inits),
        opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_reshape_keeping_key_axis_is_attention(tmp_path: Path) -> None:
    src = _graph(tmp_path / "a.onnx", [B, H, Q, -1], [B * H, Q, -1])
    report = rewrite(src, tmp_path / "a.hj.onnx")
    assert [b.kind for b in report.blocks] == ["attention"], report
    assert report.blocks[0].epsilon == np.float32(D ** -0.5) ** -1
    feeds = {n: np.random.default_rng(0).standard_normal((B * H, Q, D)).astype(np.float32)
             for n in "qkv"}
    feeds["bias"] = np.zeros((B, 1, 1, Q), np.float32)
    check_rewritten(src, tmp_path / "a.hj.onnx", feeds)


def test_reshape_mixing_keys_is_a_near_miss(tmp_path: Path) -> None:
    # (b·h, q, k) → (b, h, q/2, 2k): the softmax runs over keys of two queries at once
    src = _graph(tmp_path / "b.onnx", [B, H, Q // 2, -1], [B * H, Q, -1])
    report = inspect_onnx(src)
    assert not [b for b in report.blocks if b.kind in ("attention", "lse")], report
    reasons = [m.reason for m in report.near_misses]
    assert any("attention-shaped softmax" in r and "not proven to keep the key axis" in r
               for r in reasons), reasons
