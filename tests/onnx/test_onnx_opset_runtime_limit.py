"""The opsets hjplug accepts come from the installed onnx and ONNX Runtime, never a hard-coded
guess: ONNX Runtime's newest opset (read from its own loader check) loads and the next one is
refused; an opset outside the range gets one message (expected / found / what to do), and
`check_runnable_opset` (rewrite) uses the same number."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper

from hjplug.passes.onnx import OnnxFileError, opsets
from hjplug.passes.onnx.io import Loaded, check_runnable_opset


def _loads(opset: int) -> bool:
    import onnxruntime as ort

    x = helper.make_tensor_value_info("x", T.FLOAT, [1])
    y = helper.make_tensor_value_info("y", T.FLOAT, [1])
    m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                            [x], [y]),
                          opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception:
        return False
    return True


def test_ort_newest_opset_is_what_onnxruntime_loads() -> None:
    pytest.importorskip("onnxruntime")
    newest = opsets.ort_newest_opset()
    assert newest is not None and newest >= 21
    assert _loads(newest) and not _loads(newest + 1)


def test_runnable_range_is_the_smaller_of_onnx_and_onnxruntime() -> None:
    r = opsets.runnable_opsets()
    assert r.low == opsets.MIN_OPSET == 7
    assert r.onnx_newest == onnx.defs.onnx_opset_version()
    assert r.high == min(r.onnx_newest, r.ort_newest or r.onnx_newest)


def test_export_opset_problem_names_expected_found_and_fix() -> None:
    r = opsets.runnable_opsets()
    assert opsets.export_opset_problem(17) is None
    assert opsets.export_opset_problem(r.high) is None
    for bad in (6, r.high + 1):
        msg = opsets.export_opset_problem(bad)
        assert msg is not None and f"opset {bad}" in msg, msg
        assert f"expected an opset in 7…{r.high}" in msg and f"opset={r.high}" in msg, msg


def test_older_onnxruntime_refuses_newer_opset(monkeypatch, tmp_path: Path) -> None:
    """As with onnxruntime 1.20 (newest opset 21): opset 23 is refused by both checks."""
    import onnxruntime as ort

    monkeypatch.setattr(opsets, "ort_newest_opset", lambda: 21)
    monkeypatch.setattr("hjplug.passes.onnx.io.ort_newest_opset", lambda: 21)
    msg = opsets.export_opset_problem(23)
    assert msg is not None and f"onnxruntime {ort.__version__} loads (≤ 21)" in msg, msg
    assert "expected an opset in 7…21" in msg and "upgrade onnxruntime" in msg, msg
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", T.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", T.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    with pytest.raises(OnnxFileError, match=r"opset 23 .* runs opsets ≤ 21"):
        check_runnable_opset(Loaded(model, tmp_path / "m.onnx", False, 23))
    check_runnable_opset(Loaded(model, tmp_path / "m.onnx", False, 21))
