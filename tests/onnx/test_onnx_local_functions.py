"""Blocks inside another exporter's model-local functions (e.g. torch.onnx.export(dynamo=False,
export_modules_as_functions=...)) are found, not silently skipped: those functions are inlined
before the rules run (hjplug's own functions are not), and the report says so."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx_helpers import calls, check_rewritten

from hjplug.passes.onnx import inspect_onnx, rewrite


def _attention_in_functions() -> onnx.ModelProto:
    """Y = Attn(Attn(Q, K, V), K, V), `foreign.Attn` a model-local function holding
    softmax(Q·Kᵀ·0.25)·V on (2, 2, 5, 4) tensors."""
    scale = numpy_helper.from_array(np.array(0.25, np.float32), "")
    body = [
        h.make_node("Constant", [], ["s"], value=scale),
        h.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        h.make_node("MatMul", ["q", "kt"], ["qk"]),
        h.make_node("Mul", ["qk", "s"], ["z"]),
        h.make_node("Softmax", ["z"], ["p"], axis=-1),
        h.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    f = h.make_function("foreign", "Attn", ["q", "k", "v"], ["y"], body,
                        [h.make_opsetid("", 17)])
    nodes = [h.make_node("Attn", ["Q", "K", "V"], ["Y1"], domain="foreign", name="attn0"),
             h.make_node("Attn", ["Y1", "K", "V"], ["Y"], domain="foreign", name="attn1")]
    shp = [2, 2, 5, 4]
    vi = [h.make_tensor_value_info(n, T.FLOAT, shp) for n in ("Q", "K", "V", "Y")]
    g = h.make_graph(nodes, "g", vi[:3], vi[3:])
    return h.make_model(g, functions=[f], ir_version=10,
                        opset_imports=[h.make_opsetid("", 17), h.make_opsetid("foreign", 1)])


def test_attention_inside_foreign_functions_is_found(tmp_path):
    src, dst = tmp_path / "fn.onnx", tmp_path / "fn.hj.onnx"
    onnx.save(_attention_in_functions(), str(src))
    for report in (inspect_onnx(src), rewrite(src, dst)):
        att = [b for b in report.blocks if b.kind == "attention"]
        assert len(att) == 2, (report.blocks, report.near_misses, report.notes)
        assert all(b.epsilon == pytest.approx(4.0) for b in att)
        assert any("foreign.Attn" in n and "inlined" in n for n in report.notes), report.notes
    assert [n.op_type for n in calls(dst)] == ["HJAttentionStep", "HJAttentionStep"]
    check_rewritten(src, dst)


def test_hjplug_functions_are_read_back_not_inlined(tmp_path):
    src, dst, again = tmp_path / "fn.onnx", tmp_path / "fn.hj.onnx", tmp_path / "fn.hj2.onnx"
    onnx.save(_attention_in_functions(), str(src))
    rewrite(src, dst)
    report = rewrite(dst, again)
    assert [b.kind for b in report.blocks] == ["attention", "attention"]
    assert not any("inlined" in n for n in report.notes), report.notes
    assert [n.op_type for n in calls(again)] == ["HJAttentionStep", "HJAttentionStep"]
    check_rewritten(src, again)
