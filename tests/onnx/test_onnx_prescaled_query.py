"""A query scaled by the model before its head split (OPT / BART / Whisper: q = q_proj(x)·s₀,
then Reshape and Transpose, then q·kᵀ at scale 1) is read as the FX pass reads it: ε = 1/(s₀·s)
in q_proj(x)'s units, with s₀ in the notes, not "ε = 1, no explicit scale"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from hjplug.passes.onnx import inspect_onnx

B, S, H, D = 2, 5, 2, 8
S0 = D ** -0.5


def _graph(path: Path, s0: float, shared: bool = False) -> Path:
    """x (b, s, h·d) → x·Wq·s₀ → Reshape (b, s, h, d) → Transpose (b, h, s, d) → ·kᵀ → softmax
    → ·v; `shared`: the scaled query is also a graph output (then s₀ is not the block's)."""
    split = [helper.make_node("Reshape", [f"{n}2", "shape"], [f"{n}4"]) for n in "qkv"]
    heads = [helper.make_node("Transpose", [f"{n}4"], [f"{n}h"], perm=p)
             for n, p in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3]))]
    nodes = [helper.make_node("MatMul", ["x", f"W{n}"], [f"{n}1" if n == "q" else f"{n}2"])
             for n in "qkv"]
    nodes += [helper.make_node("Mul", ["q1", "s0"], ["q2"]), *split, *heads,
              helper.make_node("MatMul", ["qh", "kh"], ["s"]),
              helper.make_node("Softmax", ["s"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "vh"], ["y"])]
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((H * D, H * D)).astype(np.float32),
                                     f"W{n}") for n in "qkv"]
    inits += [numpy_helper.from_array(np.array(s0, np.float32), "s0"),
              numpy_helper.from_array(np.array([B, S, H, D], np.int64), "shape")]
    outs = [helper.make_tensor_value_info("y", T.FLOAT, [B, H, S, D])]
    if shared:
        outs.append(helper.make_tensor_value_info("q2", T.FLOAT, [B, S, H * D]))
    model = helper.make_model(
        helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T.FLOAT,
                                                                     [B, S, H * D])],
                          outs, inits),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_prescaled_query_gives_epsilon_in_q_proj_units(tmp_path: Path) -> None:
    [att] = inspect_onnx(_graph(tmp_path / "a.onnx", S0)).blocks
    assert att.kind == "attention" and att.epsilon == pytest.approx(D ** 0.5, rel=1e-6), att
    assert "q pre-scaled by s₀" in att.notes and "no explicit scale" not in att.notes, att.notes


def test_scaled_query_used_elsewhere_is_not_the_blocks(tmp_path: Path) -> None:
    [att] = inspect_onnx(_graph(tmp_path / "b.onnx", S0, shared=True)).blocks
    assert att.kind == "attention" and att.epsilon == 1.0, att
