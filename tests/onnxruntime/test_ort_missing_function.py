"""ONNX Runtime side of a file whose `hjplug` calls lack their model-local functions: `session`
and `check_parity` raise one OrtRunError (an HJPlugError) naming the file, the node and its op
and what to do, instead of ONNX Runtime's "hjplug:HJ…Step(-1) is not a registered function/op";
`add_stats` raises OnnxFileError instead of skipping the blocks (it used to call them "fused
attention without an explicit Softmax")."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
import torch

from hjplug.errors import HJPlugError
from hjplug.integrations.onnxruntime import ExportResult, OrtRunError, check_parity
from hjplug.integrations.onnxruntime.sessions import session
from hjplug.integrations.onnxruntime.stats import add_stats, removal_threshold
from hjplug.passes.onnx import OnnxFileError, rewrite
from hjplug.report import InspectReport

sys.path.insert(0, str(Path(__file__).parents[1] / "onnx"))
from test_onnx_subgraph_blocks import _if_model
from test_ort_stats_wrapped_subgraph import _shared_model


def _stripped(src: Path, tmp_path: Path) -> tuple[Path, str]:
    """The rewrite of `src` without its functions, and the name of its first top-level call."""
    full, path = tmp_path / "full.hj.onnx", tmp_path / "stripped.onnx"
    rewrite(src, full)
    model = onnx.load(str(full))
    del model.functions[:]
    onnx.save(model, str(path))
    first = next((n.name for n in model.graph.node if n.domain == "hjplug"), "")
    return path, first


def _check(msg: str, path: Path, node: str) -> None:
    assert f"{path}: node '{node}' (op hjplug.HJAttentionStep, overload '0')" in msg, msg
    assert "which the model does not define" in msg and "Rewrite the original model" in msg
    assert "[ONNXRuntimeError]" not in msg and "is not a registered function" not in msg


def test_session_names_the_call_without_function(tmp_path: Path) -> None:
    path, node = _stripped(_shared_model(tmp_path / "m.onnx"), tmp_path)
    with pytest.raises(OrtRunError) as caught:
        session(path, provider=["CPUExecutionProvider"])
    assert isinstance(caught.value, HJPlugError)
    msg = str(caught.value)
    assert msg.startswith(f"ONNX Runtime (CPUExecutionProvider) could not load {path}: ")
    _check(msg, path, node)


def test_session_names_a_call_inside_a_body(tmp_path: Path) -> None:
    path, _ = _stripped(_if_model(tmp_path / "if.onnx"), tmp_path)
    with pytest.raises(OrtRunError) as caught:
        session(path, provider=["CPUExecutionProvider"])
    assert "inside the body 'then_branch' of If 'gate'" in str(caught.value)


def test_check_parity_keeps_the_clear_message(tmp_path: Path) -> None:
    path, node = _stripped(_shared_model(tmp_path / "m.onnx"), tmp_path)
    report = InspectReport(model="m", source=str(path), capture="test", blocks=(),
                           near_misses=(), counts={}, seconds=0.0, notes=())
    result = ExportResult(path=path, report=report, exporter="dynamo", opset=17,
                          inputs=("input",), outputs=("output",))
    model = torch.nn.Linear(4, 4).eval()
    with pytest.raises(OrtRunError) as caught:
        check_parity(model, result, torch.randn(2, 4), provider=["CPUExecutionProvider"])
    _check(str(caught.value), path, node)
    assert "lower opset" not in str(caught.value)  # not the generic run-failure hint


def test_add_stats_refuses_instead_of_skipping(tmp_path: Path) -> None:
    path, node = _stripped(_shared_model(tmp_path / "m.onnx"), tmp_path)
    model = onnx.load(str(path))
    with pytest.raises(OnnxFileError) as caught:
        add_stats(model, removal_threshold(), source=path)
    _check(str(caught.value), path, node)
    assert len(model.graph.output) == 2  # nothing added
