"""A model declaring a default-domain opset newer than the installed onnx / ONNX Runtime support
(e.g. 99) is refused with one OnnxFileError naming the supported opsets; nothing is written."""

from __future__ import annotations

import re
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper

from hjplug.passes.onnx import OnnxFileError, inspect_onnx, rewrite


def _softmax(path: Path, opset: int) -> Path:
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                ir_version=10), str(path))
    return path


def test_opset_99_is_refused(tmp_path: Path) -> None:
    src, dst = _softmax(tmp_path / "m.onnx", 99), tmp_path / "m.hj.onnx"
    newest = onnx.defs.onnx_opset_version()
    with pytest.raises(OnnxFileError) as caught:
        rewrite(src, dst)
    msg = str(caught.value)
    assert "opset 99" in msg and f"≤ {newest}" in msg and onnx.__version__ in msg, msg
    assert not dst.exists() and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    with pytest.raises(OnnxFileError, match="opset 99"):
        inspect_onnx(src)


def test_opset_onnxruntime_cannot_run_is_refused(tmp_path: Path) -> None:
    """The ONNX Runtime probe (for an opset onnx may define but ORT does not run)."""
    import onnxruntime as ort

    from hjplug.passes.onnx.io import Loaded, check_runnable_opset

    model = onnx.load(str(_softmax(tmp_path / "m.onnx", 99)))
    with pytest.raises(OnnxFileError) as caught:
        check_runnable_opset(Loaded(model, tmp_path / "m.onnx", False, 99))
    msg = str(caught.value)
    assert f"onnxruntime {ort.__version__}" in msg and re.search(r"runs opsets ≤ \d+", msg), msg
    check_runnable_opset(Loaded(model, tmp_path / "m.onnx", False, 21))  # a supported one
