"""3-D attention scores (batch·heads merged into one axis, as Bloom's baddbmm): the head count is
recovered from a Reshape in the block that splits the scores into (…, heads, q, k), with that
Reshape named in the evidence; without one, `heads` stays None and the evidence says why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from hjplug.passes.onnx import inspect_onnx

B, H, Q, D = 2, 3, 4, 8


def _graph(path: Path, split: bool) -> Path:
    """q, k, v (b·h, q, d) → scores·(1/√d) [→ Reshape (b, h, q, −1) → softmax → Reshape back
    | → softmax] → MatMul(π, v)."""
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["ss"])]
    inits = [numpy_helper.from_array(np.array(D ** -0.5, np.float32), "scale")]
    if split:
        nodes += [helper.make_node("Reshape", ["ss", "view"], ["s4"], name="split_heads"),
                  helper.make_node("Softmax", ["s4"], ["p"], axis=-1),
                  helper.make_node("Reshape", ["p", "back"], ["p3"])]
        inits += [numpy_helper.from_array(np.array([B, H, Q, -1], np.int64), "view"),
                  numpy_helper.from_array(np.array([-1, Q, Q], np.int64), "back")]
    else:
        nodes += [helper.make_node("Softmax", ["ss"], ["p3"], axis=-1)]
    nodes.append(helper.make_node("MatMul", ["p3", "v"], ["y"]))
    x = [helper.make_tensor_value_info(n, T.FLOAT, [B * H, Q, D]) for n in "qkv"]
    model = helper.make_model(
        helper.make_graph(nodes, "g", x, [helper.make_tensor_value_info("y", T.FLOAT,
                                                                        [B * H, Q, D])], inits),
        opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_heads_from_the_splitting_reshape(tmp_path: Path) -> None:
    [att] = inspect_onnx(_graph(tmp_path / "a.onnx", split=True)).blocks
    assert att.kind == "attention" and att.hamiltonian.params["heads"] == H, att
    assert any("split_heads" in e and f"{H}" in e for e in att.evidence), att.evidence


def test_merged_heads_without_a_split_say_why(tmp_path: Path) -> None:
    [att] = inspect_onnx(_graph(tmp_path / "b.onnx", split=False)).blocks
    assert att.kind == "attention" and att.hamiltonian.params["heads"] is None, att
    assert att.hamiltonian.params["d_head"] == D
    why = [e for e in att.evidence if e.startswith("heads unknown")]
    assert why and "3-D" in why[0] and "Reshape" in why[0], att.evidence
