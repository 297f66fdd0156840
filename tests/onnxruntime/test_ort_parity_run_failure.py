"""`check_parity` on a file ONNX Runtime cannot run at the given inputs (as torch's opset-23
RotaryEmbedding at batch > 1): one `OrtRunError` naming the file, the failing node, ORT's message
and what to do (a lower opset) — not ORT's raw exception — and nothing on stderr from ORT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from hjplug.errors import HJPlugError
from hjplug.integrations.onnxruntime import ExportResult, OrtRunError, check_parity
from hjplug.report import InspectReport


def _fixed_batch_file(path: Path) -> ExportResult:
    """output = Reshape(input, [2, 4]) · W: runs at batch 2 only, failing in node 'fixed_view'."""
    w = np.eye(4, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["v"], name="fixed_view"),
         helper.make_node("MatMul", ["v", "w"], ["output"], name="mm")], "g",
        [helper.make_tensor_value_info("input", T.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("output", T.FLOAT, [2, 4])],
        [numpy_helper.from_array(np.array([2, 4], np.int64), "shape"),
         numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)],
                                ir_version=10), str(path))
    report = InspectReport(model="m", source=str(path), capture="test", blocks=(),
                           near_misses=(), counts={}, seconds=0.0, notes=())
    return ExportResult(path=path, report=report, exporter="dynamo", opset=23,
                        inputs=("input",), outputs=("output",))


def test_ort_run_failure_is_one_clear_error(tmp_path: Path, capfd) -> None:
    model = torch.nn.Linear(4, 4, bias=False).eval()
    with torch.no_grad():
        model.weight.copy_(torch.eye(4))
    result = _fixed_batch_file(tmp_path / "m.onnx")
    assert check_parity(model, result, torch.randn(2, 4)).ok()  # the export's own shapes run
    capfd.readouterr()
    with pytest.raises(OrtRunError) as caught:
        check_parity(model, result, torch.randn(3, 4))
    msg = str(caught.value)
    assert isinstance(caught.value, HJPlugError)
    assert str(result.path) in msg and "Reshape node 'fixed_view'" in msg, msg
    assert "input (3, 4)" in msg and "opset 23" in msg and "lower opset" in msg, msg
    assert "[ONNXRuntimeError]" not in msg and caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert "onnxruntime" not in capfd.readouterr().err
