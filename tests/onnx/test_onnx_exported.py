"""Dynamo exports of an MLP with residuals + log-softmax head, and of nn.LSTM / nn.GRU."""

from __future__ import annotations

import onnx
import pytest
from onnx_helpers import calls, check_rewritten

from hjplug.passes.onnx import rewrite


def test_mlp_residuals_head_and_near_misses(exported, tmp_path):
    src = exported("mlp_head")
    report = rewrite(src, tmp_path / "mlp.hj.onnx")
    kinds = [b.kind for b in report.blocks]
    assert kinds == ["residual", "residual", "lse"]
    assert [b.path for b in report.blocks][:2] == ["(root)#0", "(root)#1"]
    head = report.blocks[2]
    assert head.epsilon == pytest.approx(2.0)  # log_softmax(z / 2)
    assert head.hamiltonian.params == {"op": "log_softmax", "atoms": 5}
    reasons = sorted(m.reason for m in report.near_misses)
    assert len(reasons) == 2
    assert reasons[0].startswith("add of independent operands")
    assert reasons[1].startswith("the update F(x) holds no learned op")
    assert all(m.rule == "residual" and m.node.startswith("node_add") for m in report.near_misses)
    check_rewritten(src, tmp_path / "mlp.hj.onnx")
    # the two residual adds share one function body
    fns = onnx.load(str(tmp_path / "mlp.hj.onnx")).functions
    assert sorted(f.name for f in fns) == ["HJLSEStep", "HJResidualStep"]


def test_lstm_and_gru(exported, tmp_path):
    src = exported("recurrent")
    report = rewrite(src, tmp_path / "rec.hj.onnx")
    assert [(b.path, b.notes) for b in report.blocks] == [("lstm", "lstm"), ("gru", "gru")]
    assert all(b.epsilon == 1.0 and b.exactness == "structural" for b in report.blocks)
    assert report.blocks[0].hamiltonian.params["hidden"] == 8
    check_rewritten(src, tmp_path / "rec.hj.onnx")
    assert [n.op_type for n in calls(tmp_path / "rec.hj.onnx")] == ["HJRecurrentStep"] * 2
