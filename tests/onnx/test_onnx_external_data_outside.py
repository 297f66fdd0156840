"""External data whose location is absolute or leaves the model's directory ('../…') is refused
with one message that says so (expected: a relative path beside the model), not "the data file
may be truncated"; nothing is read from there and nothing is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from hjplug.passes.onnx import OnnxFileError, inspect_onnx, rewrite


def _pointing_to(path: Path, location: str) -> Path:
    w = numpy_helper.from_array(np.ones((3, 4), np.float32), "W")
    w.ClearField("raw_data")
    w.data_location = T.EXTERNAL
    w.external_data.add(key="location", value=location)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["z"]),
         helper.make_node("Softmax", ["z"], ["y"], axis=-1)], "g",
        [helper.make_tensor_value_info("x", T.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", T.FLOAT, [2, 4])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("where", ["../outside.bin", "absolute"])
def test_external_data_outside_the_model_directory_is_refused(tmp_path: Path, where: str) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.ones(12, np.float32).tobytes())
    location = str(outside) if where == "absolute" else where
    src = _pointing_to(model_dir / "m.onnx", location)
    with pytest.raises(OnnxFileError) as caught:
        rewrite(src, model_dir / "m.hj.onnx")
    msg = str(caught.value)
    assert location in msg and "outside" in msg and "relative path" in msg, msg
    assert "truncated" not in msg, msg
    assert sorted(p.name for p in model_dir.iterdir()) == ["m.onnx"]
    with pytest.raises(OnnxFileError, match="outside"):
        inspect_onnx(src)
