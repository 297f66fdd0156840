"""Hand-built graphs: opset-23 Attention, com.microsoft Attention / MultiHeadAttention /
GroupQueryAttention, ReduceLogSumExp, RNN — recognised with their ε and run unchanged in ORT."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnx_models as models
import pytest
from onnx_helpers import calls, check_rewritten, meta

from hjplug.passes.onnx import inspect_onnx, rewrite


def _rewrite(model: onnx.ModelProto, tmp_path, name: str):
    src, dst = tmp_path / f"{name}.onnx", tmp_path / f"{name}.hj.onnx"
    onnx.save(model, str(src))
    return src, dst, rewrite(src, dst)


@pytest.mark.parametrize(("scale", "eps"), [(None, math.sqrt(8)), (0.2, 5.0)])
def test_opset23_attention(tmp_path, scale, eps):
    src, dst, report = _rewrite(models.opset23_attention(scale), tmp_path, "att23")
    (block,) = report.blocks
    assert block.kind == "attention" and block.epsilon == pytest.approx(eps)
    assert block.evidence == ("onnx.Attention",)
    assert report.counts["attention_op"] == 1
    check_rewritten(src, dst)
    (call,) = calls(dst)
    assert call.op_type == "HJAttentionStep" and meta(call)["hjplug.source"] == "nodes: attn"


def test_com_microsoft_attention(tmp_path):
    src, dst, report = _rewrite(models.ms_attention(), tmp_path, "ms_attn")
    (block,) = report.blocks
    # hidden 16 from the packed (16, 48) weights, 4 heads → d_head 4, ε = √4
    assert block.epsilon == pytest.approx(2.0)
    assert block.hamiltonian.params["d_head"] == 4
    assert block.evidence == ("com.microsoft.Attention",)
    check_rewritten(src, dst)


@pytest.mark.parametrize(("scale", "eps"), [(0.0, math.sqrt(8)), (0.5, 2.0)])
def test_com_microsoft_multihead_attention(tmp_path, scale, eps):
    src, dst, report = _rewrite(models.ms_mha(scale), tmp_path, "mha")
    (block,) = report.blocks
    assert block.epsilon == pytest.approx(eps)
    check_rewritten(src, dst)


def test_com_microsoft_group_query_attention(tmp_path):
    src, dst, report = _rewrite(models.ms_gqa(), tmp_path, "gqa")
    (block,) = report.blocks
    assert block.epsilon == pytest.approx(math.sqrt(8))
    assert block.hamiltonian.params["kv_heads"] == 2
    assert "grouped-query (4 query / 2 kv heads)" in block.notes
    rng = np.random.default_rng(0)
    feeds = {"Q": rng.standard_normal((1, 5, 32)).astype(np.float32),
             "K": rng.standard_normal((1, 5, 16)).astype(np.float32),
             "V": rng.standard_normal((1, 5, 16)).astype(np.float32),
             "seqlens_k": np.array([4], np.int32), "total_len": np.array(5, np.int32)}
    check_rewritten(src, dst, feeds)


def test_reduce_logsumexp_with_temperature_and_softmax_readout(tmp_path):
    src, dst, report = _rewrite(models.lse_graph(), tmp_path, "lse")
    lse, readout = report.blocks
    assert lse.kind == readout.kind == "lse"
    assert lse.epsilon == pytest.approx(0.5)  # Div by 0.5 before, Mul by 0.5 after
    assert lse.hamiltonian.params == {"op": "logsumexp", "atoms": 6}
    assert readout.epsilon == 1.0 and readout.hamiltonian.params["op"] == "softmax"
    check_rewritten(src, dst)
    bodies = {f.overload: [n.op_type for n in f.node] for f in onnx.load(str(dst)).functions}
    assert [o for o in bodies["0"] if o != "Constant"] == ["Div", "ReduceLogSumExp", "Mul"]


def test_rnn_op(tmp_path):
    src, dst, report = _rewrite(models.rnn_graph(), tmp_path, "rnn")
    (block,) = report.blocks
    assert block.kind == "recurrent" and block.notes == "rnn_tanh"
    assert block.time_step == 1.0 and block.epsilon == 1.0
    assert block.path == "rnn"  # no module scopes: the node name
    check_rewritten(src, dst)


def test_inspect_writes_nothing(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(models.ms_mha(), str(src))
    before = sorted(p.name for p in tmp_path.iterdir())
    report = inspect_onnx(src)
    assert report.capture == "onnx" and len(report.blocks) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_softmax_that_is_not_attention_says_why(tmp_path):
    src, dst, report = _rewrite(models.softmax_near_misses(), tmp_path, "sm")
    assert [b.kind for b in report.blocks] == ["lse"] * 3
    notes = {b.path: b.notes for b in report.blocks}
    assert "not attention: softmax over axis 1 of a tensor of rank 4" in notes["sm_axis1"]
    assert "a readout, not Q·Kᵀ" in notes["sm_readout"]
    assert "not contracted with values" in notes["sm_probs"]
    assert report.near_misses == ()  # each softmax is an LSE block
    check_rewritten(src, dst)


def test_near_misses_without_the_lse_rule(tmp_path):
    from hjplug.passes.onnx import DEFAULT_RULES

    src = tmp_path / "sm.onnx"
    onnx.save(models.softmax_near_misses(), str(src))
    rules = [r for r in DEFAULT_RULES if r.name != "lse"]
    report = inspect_onnx(src, rules)
    assert report.blocks == ()
    assert {(m.rule, m.node) for m in report.near_misses} == {
        ("attention", "sm_axis1"), ("attention", "sm_readout"), ("attention", "sm_probs")}


def test_non_convex_block_is_reported_not_wrapped(tmp_path):
    src, dst, report = _rewrite(models.non_convex_attention(), tmp_path, "nc")
    assert [b.kind for b in report.blocks] == ["attention"]
    (miss,) = report.near_misses
    assert miss.node == "sm" and "leaves it and re-enters" in miss.reason
    assert calls(dst) == []
    check_rewritten(src, dst)


def test_einsum_attention_with_per_head_epsilon(tmp_path):
    src, dst, report = _rewrite(models.einsum_per_head_attention(), tmp_path, "ein")
    (block,) = report.blocks
    assert block.kind == "attention"
    assert block.epsilon == pytest.approx((2.0, 4.0))
    assert block.hamiltonian.params["heads"] == 2 and block.hamiltonian.params["d_head"] == 4
    assert "Einsum 'bhqd,bhkd->bhqk'" in block.notes
    check_rewritten(src, dst)
    (call,) = calls(dst)
    assert meta(call)["hjplug.epsilon"] == "[2.0, 4.0]"


@pytest.mark.parametrize("cond", [True, False])
def test_value_read_inside_an_if_branch_stays_visible(tmp_path, cond):
    src, dst, report = _rewrite(models.if_reads_softmax(), tmp_path, "if")
    assert [b.kind for b in report.blocks] == ["lse"]
    assert "subgraph bodies of 1 If node(s) scanned: 0 block(s) found inside" in report.notes
    assert {m.node for m in report.near_misses if m.rule == "subgraph"} == {"branch"}
    (call,) = calls(dst)
    assert list(call.output) == ["P"]  # still defined for the branches
    feeds = {"X": np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32),
             "C": np.array(cond)}
    check_rewritten(src, dst, feeds)


def test_nothing_to_wrap_leaves_the_graph_as_it_was(tmp_path):
    from onnx import helper as oh

    g = oh.make_graph([oh.make_node("Relu", ["X"], ["Y"], name="relu")], "g",
                      [oh.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [2, 3])],
                      [oh.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [2, 3])])
    model = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    _, dst, report = _rewrite(model, tmp_path, "relu")
    assert report.blocks == () and report.near_misses == ()
    out = onnx.load(str(dst))
    assert out.graph == model.graph and out.ir_version == 8 and not out.functions
    assert {p.key for p in out.metadata_props} == {"hjplug.version", "hjplug.report"}


def test_hjplug_call_without_metadata_is_a_near_miss(tmp_path):
    from onnx import helper as oh

    fn = oh.make_function("hjplug", "HJLSEStep", ["x"], ["y"], [oh.make_node("Softmax", ["x"],
                          ["y"])], [oh.make_opsetid("", 17)])
    g = oh.make_graph([oh.make_node("HJLSEStep", ["X"], ["Y"], domain="hjplug", name="c")], "g",
                      [oh.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [2, 3])],
                      [oh.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [2, 3])])
    model = oh.make_model(g, functions=[fn], ir_version=10,
                          opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("hjplug", 1)])
    path = tmp_path / "c.onnx"
    onnx.save(model, str(path))
    report = inspect_onnx(path)
    assert report.blocks == ()
    (miss,) = report.near_misses
    assert (miss.rule, miss.node) == ("hjplug_call", "c") and "hjplug.spec" in miss.reason
