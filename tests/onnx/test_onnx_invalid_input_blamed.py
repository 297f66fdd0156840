"""An input that passes onnx's light check but not its full check (shape inference: here a
Softmax over axis 5 of a rank-2 tensor) is refused as the input's fault, naming the input, not
reported as "an hjplug bug" after the rewrite; nothing is written."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper

from hjplug.passes.onnx import OnnxFileError, rewrite


def test_input_failing_the_full_check_is_blamed_on_the_input(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], axis=5)], "g",
                              [helper.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    src, dst = tmp_path / "m.onnx", tmp_path / "m.hj.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    with pytest.raises(OnnxFileError) as caught:
        rewrite(src, dst)
    msg = str(caught.value)
    assert msg.startswith(f"{src}:") and "full check" in msg and "hjplug bug" not in msg, msg
    assert "axis" in msg and ("re-export" in msg or "fix" in msg), msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
