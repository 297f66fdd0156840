"""A graph with an op its opset does not define: one OnnxFileError on one line naming the op, the
node, the opset and what to do (not "the file may be truncated")."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from hjplug.passes.onnx import OnnxFileError, inspect_onnx, rewrite


def _graph(op: str, opset: int) -> onnx.ModelProto:
    x = h.make_tensor_value_info("X", T.FLOAT, [2, 3])
    y = h.make_tensor_value_info("Y", T.FLOAT, [2, 3])
    nodes = [h.make_node("Relu", ["X"], ["r"], name="relu"),
             h.make_node(op, ["r"], ["Y"], name="mystery")]
    return h.make_model(h.make_graph(nodes, "g", [x], [y]),
                        opset_imports=[h.make_opsetid("", opset)])


@pytest.mark.parametrize("op, opset", [("NotAnOp", 17), ("Gelu", 17)])  # Gelu: opset ≥ 20
def test_unknown_op_names_op_node_and_opset(tmp_path, op: str, opset: int) -> None:
    src = tmp_path / "m.onnx"
    onnx.save(_graph(op, opset), str(src))
    for call in (lambda: inspect_onnx(src), lambda: rewrite(src, tmp_path / "out.onnx")):
        with pytest.raises(OnnxFileError) as info:
            call()
        text = str(info.value)
        assert "\n" not in text, text
        for word in (str(src), op, "'mystery'", f"opset {opset}", "version_converter"):
            assert word in text, text
        assert "truncated" not in text, text
    assert not (tmp_path / "out.onnx").exists()
