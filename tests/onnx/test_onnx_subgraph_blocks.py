"""Blocks inside If / Loop / Scan bodies are recognised (the rules run on each body, recursively),
reported under '<control node>/<attribute>/…' and, with rewrite(wrap_subgraphs=True), wrapped
inside that body (a call to a model-local hjplug function; without it the notes say they were
not wrapped); a body holding no block is a near-miss naming its control node,
the body and why. Nothing is skipped silently, and the rewritten file runs as the original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx_helpers import check_rewritten

from hjplug.passes.onnx import inspect_onnx, rewrite

S = [2, 2, 4, 8]  # (b, heads, q, d)


def _attention_body() -> onnx.GraphProto:
    """Q·Kᵀ·(1/√8) → softmax → π·V on the outer-scope Q, K, V."""
    nodes = [h.make_node("Transpose", ["K"], ["kt"], perm=[0, 1, 3, 2]),
             h.make_node("MatMul", ["Q", "kt"], ["s"]),
             h.make_node("Mul", ["s", "scale"], ["z"]),
             h.make_node("Softmax", ["z"], ["p"], axis=-1, name="sm"),
             h.make_node("MatMul", ["p", "V"], ["t"])]
    scale = numpy_helper.from_array(np.array(8 ** -0.5, np.float32), "scale")
    return h.make_graph(nodes, "then", [], [h.make_tensor_value_info("t", T.FLOAT, S)], [scale])


def _if_model(path: Path) -> Path:
    other = h.make_graph([h.make_node("Neg", ["V"], ["e"])], "else", [],
                         [h.make_tensor_value_info("e", T.FLOAT, S)])
    ins = [h.make_tensor_value_info(n, T.FLOAT, S) for n in "QKV"]
    graph = h.make_graph(
        [h.make_node("If", ["C"], ["Y"], then_branch=_attention_body(), else_branch=other,
                     name="gate")], "g", [*ins, h.make_tensor_value_info("C", T.BOOL, [])],
        [h.make_tensor_value_info("Y", T.FLOAT, S)])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _loop_model(path: Path) -> Path:
    """Loop (3 trips) whose body scales a carried state and takes its LogSoftmax."""
    body = h.make_graph(
        [h.make_node("Div", ["x_in", "temp"], ["z"]),
         h.make_node("LogSoftmax", ["z"], ["x_out"], axis=-1, name="readout"),
         h.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [h.make_tensor_value_info("i", T.INT64, []),
         h.make_tensor_value_info("cond_in", T.BOOL, []),
         h.make_tensor_value_info("x_in", T.FLOAT, [3, 5])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []),
         h.make_tensor_value_info("x_out", T.FLOAT, [3, 5])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "temp")])
    graph = h.make_graph(
        [h.make_node("Loop", ["n", "", "X"], ["Y"], body=body, name="steps")], "g",
        [h.make_tensor_value_info("X", T.FLOAT, [3, 5])],
        [h.make_tensor_value_info("Y", T.FLOAT, [3, 5])],
        [numpy_helper.from_array(np.array(3, np.int64), "n")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def test_attention_inside_an_if_branch_is_recognised(tmp_path: Path) -> None:
    src = _if_model(tmp_path / "if.onnx")
    report = inspect_onnx(src)
    [att] = report.blocks
    assert att.kind == "attention" and att.path.startswith("gate/then_branch/"), att
    assert att.epsilon == np.float32(8 ** -0.5) ** -1
    assert "inside If 'gate' (then_branch)" in att.notes, att.notes
    [miss] = [m for m in report.near_misses if m.node == "gate"]
    assert "else_branch" in miss.reason and "no recognised block" in miss.reason, miss
    assert "Neg" in miss.reason
    dst = tmp_path / "if.hj.onnx"
    plain = rewrite(src, dst, wrap_subgraphs=False)
    assert [b.path for b in plain.blocks] == [att.path]
    assert any("1 block(s) found inside, reported, not wrapped" in n for n in plain.notes)
    assert not [n for n in onnx.load(str(dst)).functions]
    assert [b.path for b in rewrite(src, dst, wrap_subgraphs=True).blocks] == [att.path]
    [gate] = onnx.load(str(dst)).graph.node
    then = next(a.g for a in gate.attribute if a.name == "then_branch")
    ops = [(n.domain, n.op_type) for n in then.node]
    assert ("hjplug", "HJAttentionStep") in ops and ("", "Softmax") not in ops, ops
    again = inspect_onnx(dst)  # read back from the call's metadata
    assert [(b.path, b.epsilon) for b in again.blocks] == [(att.path, att.epsilon)]
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(S).astype(np.float32) for n in "QKV"}
    for cond in (True, False):
        check_rewritten(src, dst, {**feeds, "C": np.array(cond)})


def test_lse_inside_a_loop_body_is_recognised(tmp_path: Path) -> None:
    src = _loop_model(tmp_path / "loop.onnx")
    report = inspect_onnx(src)
    [lse] = report.blocks
    assert lse.kind == "lse" and lse.path.startswith("steps/body/") and lse.epsilon == 2.0, lse
    assert "Loop 'steps'" in lse.notes
    assert not any("not scanned" in n for n in report.notes), report.notes
    dst = tmp_path / "loop.hj.onnx"
    rewrite(src, dst, wrap_subgraphs=True)
    [loop] = onnx.load(str(dst)).graph.node
    assert "HJLSEStep" in {n.op_type for n in loop.attribute[0].g.node}
    check_rewritten(src, dst, {"X": np.random.default_rng(0).standard_normal((3, 5))
                               .astype(np.float32)})
